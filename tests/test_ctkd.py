# Copyright (c) mmkd_plugin contributors.
"""CTKD (Li et al., AAAI 2023): learnt temperature, gradient reversal,
curriculum; the per-call temperature of KDLoss and DKDLoss it relies on.

The references are written from shared/reference/methods.md (plain
softmax / log, float64) and share no code with the library: in particular
the reversed gradient of theta is compared with ``lambda`` times the
ordinary autograd gradient of a reference KD that has no reversal layer.
"""
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import MODELS

from mmkd_plugin.models.losses import CTKDLoss, DKDLoss, KDLoss

RTOL = 1e-6
ATOL = 1e-10
DTYPE = torch.float64


# --------------------------------------------------------------- references
def ref_kl_rows(student, teacher, tau):
    """tau^2 * KL(softmax(t / tau) || softmax(s / tau)) per row; tau a
    scalar or one per row."""
    tau = torch.as_tensor(tau, dtype=DTYPE)
    if tau.dim() == 1:
        tau = tau[:, None]
    p_t = torch.softmax(teacher / tau, dim=1)
    p_s = torch.softmax(student / tau, dim=1)
    kl = (p_t * (p_t.log() - p_s.log())).sum(1)
    return kl * tau.reshape(-1)**2


def ref_dkd_rows(student, teacher, labels, tau, alpha, beta):
    """alpha * TCKD_b + beta * NCKD_b per row, each times tau^2."""
    p_s = torch.softmax(student / tau, dim=1)
    p_t = torch.softmax(teacher / tau, dim=1)
    rows = torch.arange(len(labels))
    pt_s, pt_t = p_s[rows, labels], p_t[rows, labels]
    b_s = torch.stack([pt_s, 1 - pt_s], 1)
    b_t = torch.stack([pt_t, 1 - pt_t], 1)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1)
    keep = torch.ones_like(p_s, dtype=torch.bool)
    keep[rows, labels] = False
    q_s = p_s[keep].view(len(labels), -1) / (1 - pt_s)[:, None]
    q_t = p_t[keep].view(len(labels), -1) / (1 - pt_t)[:, None]
    nckd = (q_t * (q_t.log() - q_s.log())).sum(1)
    return (alpha * tckd + beta * nckd) * tau**2


def ref_lambda_cosine(epoch, num_epochs, lmax=0.0, lmin=-1.0):
    e = min(epoch, num_epochs)
    return lmin + (lmax - lmin) * (1 + math.cos(math.pi * e / num_epochs)) / 2


def logits(*shape, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen, dtype=DTYPE) *
            scale).requires_grad_()


def assert_close(got, want):
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)


@pytest.fixture
def set_epoch():
    """Set the 1-based training epoch as the runner would (0-based in the
    MessageHub); restores the hub afterwards."""
    hub = MessageHub.get_current_instance()
    had, old = 'epoch' in hub.runtime_info, hub.get_info('epoch')

    def setter(epoch):
        hub.update_info('epoch', epoch - 1)

    yield setter
    if had:
        hub.update_info('epoch', old)
    else:
        hub.runtime_info.pop('epoch', None)


# --------------------------------------------------------------- curriculum
@pytest.mark.parametrize('epoch, expected', [(1, -0.0245), (2, -0.0955),
                                             (5, -0.5), (10, -1.0),
                                             (11, -1.0), (240, -1.0)])
def test_cosine_curriculum_cifar_values(set_epoch, epoch, expected):
    """The spec's CIFAR values (L = 10), epochs counted from 1."""
    loss = CTKDLoss(curriculum_epochs=10)
    set_epoch(epoch)
    assert loss.reversal_coefficient() == pytest.approx(expected, abs=5e-5)


def test_cosine_curriculum_imagenet_default(set_epoch):
    loss = CTKDLoss()  # L = 5
    for epoch, expected in ((1, -0.0955), (3, -0.6545), (5, -1.0),
                            (90, -1.0)):
        set_epoch(epoch)
        assert loss.reversal_coefficient() == pytest.approx(expected,
                                                            abs=5e-5)


def test_linear_curriculum(set_epoch):
    """lambda(e) = -e (lmax - lmin) / L, e capped at L - 1."""
    loss = CTKDLoss(curriculum_epochs=10, schedule='linear')
    for epoch, expected in ((1, -0.1), (4, -0.4), (9, -0.9), (10, -0.9),
                            (200, -0.9)):
        set_epoch(epoch)
        assert loss.reversal_coefficient() == pytest.approx(expected,
                                                            abs=1e-12)


# --------------------------------------------------------------- temperature
def test_temperature_at_init():
    tau = CTKDLoss().temperature_module(-1.0).detach()
    assert tau.dim() == 0
    assert float(tau) == pytest.approx(15.62, abs=5e-3)
    assert float(tau) == pytest.approx(1 + 20 / (1 + math.exp(-1)),
                                       rel=1e-6)


@pytest.mark.parametrize('epoch', [1, 3, 10])
def test_theta_gradient_is_lambda_times_kd_gradient(set_epoch, epoch):
    """theta's gradient = lambda(e) * d KD / d theta (no reversal in the
    reference); the student's gradient is not reversed."""
    set_epoch(epoch)
    student, teacher = logits(6, 11, seed=1), logits(6, 11, seed=2)
    loss = CTKDLoss(loss=dict(type='KDLoss', loss_weight=0.9),
                    curriculum_epochs=10).double()
    with torch.no_grad():
        loss.temperature_module.theta.fill_(0.3)
    ours = loss(student, teacher)
    got_student, got_theta = torch.autograd.grad(
        ours, [student, loss.temperature_module.theta])

    theta = torch.tensor(0.3, dtype=DTYPE, requires_grad=True)
    tau = 1.0 + 20.0 * torch.sigmoid(theta)
    ref = 0.9 * ref_kl_rows(student, teacher.detach(), tau).mean()
    want_student, want_theta = torch.autograd.grad(ref, [student, theta])

    assert_close(ours, ref)
    assert_close(got_student, want_student)
    assert want_theta.abs() > 1e-4  # the comparison below has teeth
    assert_close(got_theta, ref_lambda_cosine(epoch, 10) * want_theta)


def test_kd_at_learnt_temperature_matches_formula():
    """Value and student gradients at a learnt tau (theta moved off its
    initial value), float64."""
    student, teacher = logits(9, 17, seed=3), logits(9, 17, seed=4)
    loss = CTKDLoss(t_start=2.0, t_end=10.0).double()
    with torch.no_grad():
        loss.temperature_module.theta.fill_(-0.7)
    tau = 2.0 + 10.0 / (1 + math.exp(0.7))
    ours = loss(student, teacher)
    ref = ref_kl_rows(student, teacher.detach(), tau).mean()
    assert_close(ours, ref)
    assert_close(*(torch.autograd.grad(value, student)[0]
                   for value in (ours, ref)))
    assert torch.autograd.grad(ours, teacher, allow_unused=True)[0] is None


# --------------------------------------------------------------- per call T
def test_kd_per_sample_temperature_matches_loop():
    student, teacher = logits(7, 13, seed=5), logits(7, 13, seed=6)
    tau = torch.tensor([1.0, 2.5, 4.0, 7.0, 0.5, 3.0, 15.0], dtype=DTYPE,
                       requires_grad=True)
    weight = torch.rand(7, dtype=DTYPE,
                        generator=torch.Generator().manual_seed(0))
    ours = KDLoss(temperature=99.0, loss_weight=0.5)(
        student, teacher, weight=weight, temperature=tau)
    rows = []
    for i in range(7):
        p_t = torch.softmax(teacher[i] / tau[i], dim=0)
        p_s = torch.softmax(student[i] / tau[i], dim=0)
        rows.append(weight[i] * tau[i]**2 *
                    (p_t * (p_t.log() - p_s.log())).sum())
    ref = 0.5 * torch.stack(rows).mean()
    assert_close(ours, ref)
    for got, want in zip(torch.autograd.grad(ours, [student, tau]),
                         torch.autograd.grad(ref, [student, tau])):
        assert_close(got, want)


def test_kd_scalar_temperature_tensor_replaces_configured_one():
    student, teacher = logits(5, 9, seed=7), logits(5, 9, seed=8)
    tau = torch.tensor(3.0, dtype=DTYPE, requires_grad=True)
    ours = KDLoss(temperature=1.0)(student, teacher, temperature=tau)
    ref = ref_kl_rows(student, teacher.detach(), tau).mean()
    assert_close(ours, ref)
    assert_close(torch.autograd.grad(ours, tau)[0],
                 torch.autograd.grad(ref, tau)[0])
    # Unchanged without it.
    assert_close(KDLoss(temperature=3.0)(student, teacher), ref)


def test_dkd_per_sample_temperature_matches_loop():
    student, teacher = logits(6, 10, seed=9), logits(6, 10, seed=10)
    labels = torch.tensor([0, 9, 3, 3, 5, 1])
    tau = torch.tensor([1.0, 2.0, 4.0, 8.0, 0.7, 5.0], dtype=DTYPE,
                       requires_grad=True)
    ours = DKDLoss(alpha=1.0, beta=2.0, temperature=99.0)(
        student, teacher, labels, temperature=tau)
    ref = torch.cat([
        ref_dkd_rows(student[i:i + 1], teacher[i:i + 1].detach(),
                     labels[i:i + 1], tau[i], 1.0, 2.0) for i in range(6)
    ]).mean()
    assert_close(ours, ref)
    for got, want in zip(torch.autograd.grad(ours, [student, tau]),
                         torch.autograd.grad(ref, [student, tau])):
        assert_close(got, want)


# --------------------------------------------------------------- with DKD
def test_ctkd_passes_labels_to_dkd():
    student, teacher = logits(8, 12, seed=11), logits(8, 12, seed=12)
    labels = torch.tensor([0, 11, 4, 4, 7, 2, 9, 1])
    loss = CTKDLoss(loss=dict(type='DKDLoss', alpha=1.0, beta=2.0)).double()
    tau = 1 + 20 / (1 + math.exp(-1))
    ours = loss(student, teacher, labels=labels)
    ref = ref_dkd_rows(student, teacher.detach(), labels, tau, 1.0,
                       2.0).mean()
    assert_close(ours, ref)
    assert_close(torch.autograd.grad(ours, student)[0],
                 torch.autograd.grad(ref, student)[0])
    with pytest.raises(ValueError, match='DKDLoss needs labels'):
        loss(student, teacher)
    # KD takes no labels: they are not passed on (no TypeError).
    kd = CTKDLoss().double()
    assert_close(kd(student, teacher, labels=labels), kd(student, teacher))


def test_ctkd_builds_from_registry_and_trains_theta():
    """Registered in mmengine's root MODELS; theta is a parameter of the
    loss, so an optimizer over the wrapper's parameters updates it."""
    loss = MODELS.build(dict(type='CTKDLoss', loss=dict(type='KDLoss')))
    assert [name for name, _ in loss.named_parameters()
            ] == ['temperature_module.theta']


# --------------------------------------------------------------- instance
def test_instance_wise_temperature(set_epoch):
    """Our predictor: tau_b starts at 15.62 for every sample; the
    predictor's parameters get lambda times the gradient of a reference
    loss computed with a hand-written MLP; the student's gradient equals
    the reference's at the predicted (input-detached) temperatures."""
    set_epoch(2)
    student, teacher = logits(5, 6, seed=13), logits(5, 6, seed=14)
    loss = CTKDLoss(instance_wise=True, num_classes=6, hidden_channels=8,
                    curriculum_epochs=10).double()
    mlp = loss.temperature_module.mlp
    tau0 = loss.temperature_module(-1.0, student, teacher)
    assert tau0.shape == (5, )
    assert_close(tau0, torch.full((5, ), 1 + 20 / (1 + math.exp(-1)),
                                  dtype=DTYPE))
    with torch.no_grad():  # move off the initial zero weight
        mlp[2].weight.copy_(torch.linspace(-0.3, 0.3, 8)[None])
    ours = loss(student, teacher)
    params = [mlp[0].weight, mlp[0].bias, mlp[2].weight, mlp[2].bias]
    got = torch.autograd.grad(ours, [student] + params)

    w1, b1, w2, b2 = (p.detach().clone().requires_grad_()
                      for p in (mlp[0].weight, mlp[0].bias, mlp[2].weight,
                                mlp[2].bias))
    inputs = torch.cat([student, teacher], 1).detach()
    theta = (torch.relu(inputs @ w1.T + b1) @ w2.T + b2)[:, 0]
    tau = 1.0 + 20.0 * torch.sigmoid(theta)
    ref = ref_kl_rows(student, teacher.detach(), tau).mean()
    want = torch.autograd.grad(ref, [student, w1, b1, w2, b2])
    assert_close(ours, ref)
    assert_close(got[0], want[0])
    lam = ref_lambda_cosine(2, 10)
    for g, w in zip(got[1:], want[1:]):
        assert w.abs().max() > 1e-6
        assert_close(g, lam * w)


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize('kwargs, match', [
    (dict(loss=dict(type='PKDLoss')), 'PKDLoss has no `temperature`'),
    (dict(t_start=0.0), 't_start > 0'),
    (dict(t_end=-1.0), 't_end >= 0'),
    (dict(curriculum_epochs=0), 'curriculum_epochs'),
    (dict(curriculum_epochs=2.5), 'curriculum_epochs'),
    (dict(schedule='step'), 'schedule'),
    (dict(instance_wise=True), 'num_classes'),
])
def test_ctkd_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CTKDLoss(**kwargs)


def test_bad_logits_and_temperatures_are_refused():
    student, teacher = torch.zeros(4, 5), torch.zeros(4, 5)
    with pytest.raises(ValueError, match='same'):
        CTKDLoss()(student, torch.zeros(4, 6))
    with pytest.raises(ValueError, match='num_classes=7'):
        CTKDLoss(instance_wise=True, num_classes=7)(student, teacher)
    for tau in (torch.ones(5), torch.ones(4, 1), 2.0):
        with pytest.raises(ValueError, match=r'temperature must be .*\(4, \)'):
            KDLoss()(student, teacher, temperature=tau)
        with pytest.raises(ValueError, match=r'temperature must be .*\(4, \)'):
            DKDLoss()(student, teacher, torch.zeros(4, dtype=torch.long),
                      temperature=tau)
