# Copyright (c) mmkd_plugin contributors.
"""Classification logit losses: DIST, WSLD and DKD's warm-up.

The references below are written from the formulas in
shared/reference/methods.md with plain exp / log / sqrt and Python loops,
in float64, and share no code with the library.
"""
import math
import re

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import MODELS

from mmkd_plugin.models.losses import DISTLoss, DKDLoss, WSLDLoss

RTOL = 1e-6
ATOL = 1e-12
DTYPE = torch.float64


# --------------------------------------------------------------- references
def ref_softmax(z):
    """Softmax of a 1-D tensor, shifted by its max."""
    e = torch.exp(z - z.max())
    return e / e.sum()


def ref_log_softmax(z):
    shifted = z - z.max()
    return shifted - torch.log(torch.exp(shifted).sum())


def ref_standardize(z):
    """Each row: (z - mean) / (unbiased std + 1e-7)."""
    rows = []
    for row in z:
        mean = row.sum() / len(row)
        var = ((row - mean)**2).sum() / (len(row) - 1)
        rows.append((row - mean) / (torch.sqrt(var) + 1e-7))
    return torch.stack(rows)


def ref_pearson(u, v):
    """Cosine of the mean-centred 1-D vectors, denominator + 1e-8."""
    u = u - u.sum() / len(u)
    v = v - v.sum() / len(v)
    norm_u = torch.sqrt((u * u).sum())
    norm_v = torch.sqrt((v * v).sum())
    return (u * v).sum() / (norm_u * norm_v + 1e-8)


def ref_dist(student, teacher, tau, beta=1.0, gamma=1.0, loss_weight=1.0):
    num_samples, num_classes = student.shape
    y_s = torch.stack([ref_softmax(row / tau) for row in student])
    y_t = torch.stack([ref_softmax(row / tau) for row in teacher])
    inter = 1 - sum(ref_pearson(y_s[i], y_t[i])
                    for i in range(num_samples)) / num_samples
    intra = 1 - sum(ref_pearson(y_s[:, j], y_t[:, j])
                    for j in range(num_classes)) / num_classes
    return loss_weight * tau**2 * (beta * inter + gamma * intra)


def ref_wsld(student, teacher, labels, tau, loss_weight=1.0):
    terms = []
    for z_s, z_t, y in zip(student, teacher, labels.tolist()):
        soft_ce = -(ref_softmax(z_t / tau) *
                    ref_log_softmax(z_s / tau)).sum()
        ce_s = -ref_log_softmax(z_s.detach())[y]
        ce_t = -ref_log_softmax(z_t.detach())[y]
        weight = 1 - torch.exp(-torch.clamp(ce_s / (ce_t + 1e-7), min=0))
        terms.append(weight * soft_ce)
    return loss_weight * tau**2 * sum(terms) / len(terms)


# --------------------------------------------------------------- helpers
def logits(*shape, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen, dtype=DTYPE) *
            scale).requires_grad_()


def random_labels(num_samples, num_classes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (num_samples, ), generator=gen)


def assert_value_and_grad(ours, reference, student):
    torch.testing.assert_close(ours, reference, rtol=RTOL, atol=ATOL)
    got, = torch.autograd.grad(ours, student, retain_graph=True)
    want, = torch.autograd.grad(reference, student, retain_graph=True)
    assert want.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)


def assert_no_teacher_grad(loss, teacher):
    grad, = torch.autograd.grad(loss, teacher, retain_graph=True,
                                allow_unused=True)
    assert grad is None or not grad.any()


# Logit scales: ordinary, large (near one-hot probabilities; a naive exp
# overflows in float32), and tiny (centred probabilities so flat that the
# 1e-8 of the Pearson denominator dominates).
SCALES = {'normal': 3.0, 'large': 60.0, 'tiny': 1e-4}


# --------------------------------------------------------------- DIST
@pytest.mark.parametrize('scale', sorted(SCALES))
@pytest.mark.parametrize('tau, beta, gamma', [(1.0, 1.0, 1.0),
                                              (4.0, 1.0, 1.0),
                                              (2.0, 0.3, 1.7)])
def test_dist_matches_formula(tau, beta, gamma, scale):
    student = logits(9, 13, seed=1, scale=SCALES[scale])
    teacher = logits(9, 13, seed=2, scale=SCALES[scale])
    loss = DISTLoss(temperature=tau, inter_weight=beta, intra_weight=gamma,
                    loss_weight=2.0)
    ours = loss(student, teacher)
    reference = ref_dist(student, teacher, tau, beta, gamma, 2.0)
    assert_value_and_grad(ours, reference, student)
    assert_no_teacher_grad(ours, teacher)


def test_dist_inter_and_intra_terms_apart():
    """Each term alone against its reference (catches swapped axes on a
    non-square batch)."""
    student, teacher = logits(6, 11, seed=3), logits(6, 11, seed=4)
    inter = DISTLoss(intra_weight=0.0)(student, teacher)
    intra = DISTLoss(inter_weight=0.0)(student, teacher)
    assert_value_and_grad(inter, ref_dist(student, teacher, 1.0, 1.0, 0.0),
                          student)
    assert_value_and_grad(intra, ref_dist(student, teacher, 1.0, 0.0, 1.0),
                          student)
    assert not torch.isclose(inter, intra)


def test_dist_of_identical_logits_is_zero_and_batch_of_one_keeps_intra():
    student = logits(5, 7, seed=5)
    # Identical inputs: rho = |u'|^2 / (|u'|^2 + 1e-8), just below 1.
    identical = DISTLoss()(student, student.detach())
    assert 0 < identical < 1e-5
    torch.testing.assert_close(identical, ref_dist(student, student, 1.0),
                               rtol=RTOL, atol=ATOL)
    # One sample: every class column is a single value, so its centred
    # vector is 0, rho = 0 / (0 + 1e-8) = 0 and intra = 1.
    single = DISTLoss(inter_weight=0.0)(student[:1], student[:1].detach())
    torch.testing.assert_close(single, torch.ones((), dtype=DTYPE))


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_dist_logit_standardization(tau):
    student, teacher = logits(8, 10, seed=6), logits(8, 10, seed=7)
    ours = DISTLoss(temperature=tau, logit_standardization=True)(student,
                                                                teacher)
    reference = ref_dist(ref_standardize(student), ref_standardize(teacher),
                         tau)
    assert_value_and_grad(ours, reference, student)
    assert_no_teacher_grad(ours, teacher)
    plain = DISTLoss(temperature=tau)(student, teacher)
    assert not torch.isclose(ours, plain, rtol=1e-3)


def test_dist_empty_batch_is_zero():
    student = torch.zeros(0, 5, requires_grad=True)
    value = DISTLoss()(student, torch.zeros(0, 5))
    assert value.item() == 0
    value.backward()


# --------------------------------------------------------------- WSLD
@pytest.mark.parametrize('scale', ['normal', 'large'])
@pytest.mark.parametrize('tau, loss_weight', [(1.0, 1.0), (2.0, 2.5),
                                              (4.0, 0.5)])
def test_wsld_matches_formula(tau, loss_weight, scale):
    student = logits(10, 12, seed=8, scale=SCALES[scale])
    teacher = logits(10, 12, seed=9, scale=SCALES[scale])
    labels = random_labels(10, 12, seed=1)
    loss = WSLDLoss(temperature=tau, loss_weight=loss_weight)
    ours = loss(student, teacher, labels)
    reference = ref_wsld(student, teacher, labels, tau, loss_weight)
    assert_value_and_grad(ours, reference, student)
    assert_no_teacher_grad(ours, teacher)


def test_wsld_weights_follow_the_hard_losses():
    """A sample the student already fits better than the teacher gets a small
    weight; one only the teacher fits gets a weight near 1 (B = 1, so the
    loss is weight * soft CE)."""
    teacher = torch.tensor([[4.0, 0.0, 0.0]], dtype=DTYPE)
    label = torch.tensor([0])
    for student_logit in (9.0, -4.0):
        student = torch.tensor([[student_logit, 0.0, 0.0]], dtype=DTYPE)
        ce_s = -math.log(math.exp(student_logit) /
                         (math.exp(student_logit) + 2))
        ce_t = -math.log(math.exp(4.0) / (math.exp(4.0) + 2))
        weight = 1 - math.exp(-ce_s / (ce_t + 1e-7))
        p_t = torch.softmax(teacher[0], 0)
        soft_ce = -(p_t * torch.log_softmax(student[0], 0)).sum()
        torch.testing.assert_close(
            WSLDLoss()(student, teacher, label), weight * soft_ce,
            rtol=1e-12, atol=0)
        assert (weight < 0.1) if student_logit > 4 else (weight > 0.99)


def test_wsld_empty_batch_is_zero():
    value = WSLDLoss()(torch.zeros(0, 5), torch.zeros(0, 5),
                       torch.zeros(0, dtype=torch.long))
    assert value.item() == 0


# --------------------------------------------------------------- precision
@pytest.mark.parametrize('build, with_labels', [
    (lambda: DISTLoss(temperature=2.0), False),
    (lambda: DISTLoss(logit_standardization=True), False),
    (lambda: WSLDLoss(temperature=2.0), True),
])
def test_loss_in_float32_under_bf16_autocast(build, with_labels):
    gen = torch.Generator().manual_seed(11)
    student = (torch.randn(7, 9, generator=gen) * 3).bfloat16()
    teacher = (torch.randn(7, 9, generator=gen) * 3).bfloat16()
    args = (torch.randint(0, 9, (7, ), generator=gen), ) if with_labels \
        else ()
    loss = build()
    expected = loss(student.float(), teacher.float(), *args)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(student, teacher, *args)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=0)


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize('loss_type', ['DISTLoss', 'WSLDLoss'])
def test_registered_in_root_registry(loss_type):
    loss = MODELS.build(dict(type=loss_type, temperature=3.0))
    assert type(loss).__name__ == loss_type and loss.temperature == 3.0


@pytest.mark.parametrize('loss_cls', [DISTLoss, WSLDLoss])
@pytest.mark.parametrize('temperature', [0.0, -1.0])
def test_rejects_non_positive_temperature(loss_cls, temperature):
    with pytest.raises(ValueError, match='temperature must be positive'):
        loss_cls(temperature=temperature)


@pytest.mark.parametrize('student_shape, teacher_shape', [((4, 5), (4, 6)),
                                                          ((4, 5), (3, 5)),
                                                          ((5, ), (5, ))])
def test_rejects_mismatched_logits(student_shape, teacher_shape):
    student, teacher = torch.zeros(student_shape), torch.zeros(teacher_shape)
    shapes = re.escape(f'got {student_shape} and {teacher_shape}.')
    with pytest.raises(ValueError, match='DISTLoss expects .*' + shapes):
        DISTLoss()(student, teacher)
    with pytest.raises(ValueError, match='WSLDLoss expects .*' + shapes):
        WSLDLoss()(student, teacher, torch.zeros(student_shape[0],
                                                 dtype=torch.long))


@pytest.mark.parametrize('labels, match', [
    (torch.tensor([0, 5]), r'\[0, 5\) for logits of shape \(2, 5\), got '
     r'\[0, 5\]'),
    (torch.tensor([-1, 2]), r'\[0, 5\).*got \[-1, 2\]'),
    (torch.tensor([[0], [1]]), r'shape \(2,\) for logits of shape '
     r'\(2, 5\), got torch.int64 labels of shape \(2, 1\)'),
    (torch.tensor([0, 1, 2]), r'got torch.int64 labels of shape \(3,\)'),
    (torch.tensor([0.0, 1.0]), 'integer labels'),
])
@pytest.mark.parametrize('loss_cls', [WSLDLoss, DKDLoss])
def test_label_losses_reject_bad_labels(loss_cls, labels, match):
    with pytest.raises(ValueError, match=loss_cls.__name__ + '.*' + match):
        loss_cls()(torch.zeros(2, 5), torch.zeros(2, 5), labels)


def test_label_range_is_not_read_off_the_cpu():
    """Off the CPU the range check would wait for the device every step,
    so it is skipped there (meta tensors have no values to read: reading
    one raises)."""
    from mmkd_plugin.models.losses.kd_loss import check_labels
    logits = torch.zeros(2, 5, device='meta')
    check_labels('DKDLoss', torch.tensor([0, 9], device='meta'), logits)
    with pytest.raises(ValueError, match='integer labels'):
        check_labels('DKDLoss', torch.zeros(2, device='meta'), logits)


# --------------------------------------------------------------- DKD warm-up
@pytest.fixture
def runner_epoch():
    """Set the 0-based runner epoch in the MessageHub; restored afterwards."""
    hub = MessageHub.get_current_instance()
    missing = object()
    saved = hub.runtime_info.get('epoch', missing)
    yield lambda epoch: hub.update_info('epoch', epoch)
    if saved is missing:
        hub.runtime_info.pop('epoch', None)
    else:
        hub.update_info('epoch', saved)


@pytest.mark.parametrize('epoch, factor', [(0, 1 / 20), (9, 10 / 20),
                                           (18, 19 / 20), (19, 1.0),
                                           (25, 1.0)])
def test_dkd_warmup(runner_epoch, epoch, factor):
    student, teacher = logits(6, 10, seed=12), logits(6, 10, seed=13)
    labels = random_labels(6, 10, seed=2)
    runner_epoch(epoch)
    warm = DKDLoss(warmup_epochs=20)(student, teacher, labels)
    full = DKDLoss()(student, teacher, labels)
    torch.testing.assert_close(warm, full * factor, rtol=1e-14, atol=0)
    got, = torch.autograd.grad(warm, student)
    want, = torch.autograd.grad(full, student)
    torch.testing.assert_close(got, want * factor, rtol=1e-12, atol=0)


def test_dkd_warmup_defaults_to_none_and_rejects_negative(runner_epoch):
    runner_epoch(0)
    assert DKDLoss().warmup_epochs == 0
    student, teacher = logits(3, 4, seed=14), logits(3, 4, seed=15)
    labels = torch.tensor([0, 1, 3])
    torch.testing.assert_close(
        DKDLoss()(student, teacher, labels),
        DKDLoss(warmup_epochs=1)(student, teacher, labels), rtol=0, atol=0)
    with pytest.raises(ValueError, match='warmup_epochs'):
        DKDLoss(warmup_epochs=-1)


def test_warmup_longer_than_training_is_refused():
    """Under an iteration-based loop the runner reports max_epochs 1: a
    20-epoch warm-up would stay at 1/20 silently."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    hub.update_info('max_epochs', 1)
    loss = DKDLoss(warmup_epochs=20)
    logits = torch.randn(3, 4)
    with pytest.raises(ValueError, match='longer than the training'):
        loss(logits, logits.flip(0), torch.tensor([0, 1, 2]))
    hub.update_info('max_epochs', 20)
    assert torch.isfinite(loss(logits, logits.flip(0),
                               torch.tensor([0, 1, 2])))
