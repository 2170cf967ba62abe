# Copyright (c) mmkd_plugin contributors.
"""SoftLabelLoss: FKD's soft cross-entropy, and its temperature.

The references are written from the formula with plain exp / log and
Python loops, in float64, and share no code with the library.
"""
import pytest
import torch
from mmengine.registry import DefaultScope

from mmkd_plugin.models.losses import SoftLabelLoss

DTYPE = torch.float64


def ref_log_softmax(z):
    shifted = z - z.max()
    return shifted - torch.log(torch.exp(shifted).sum())


def ref_soft_label_loss(student, targets, temperature, weights=None,
                        divisor=None, loss_weight=1.0):
    """T^2 / B * sum_b -sum_c q_T log softmax(z / T), q_T = q^(1/T)
    renormalised, one row at a time."""
    total = 0
    for b, (z, q) in enumerate(zip(student, targets)):
        powered = [float(p)**(1 / temperature) for p in q]
        q_t = torch.tensor(powered, dtype=DTYPE) / sum(powered)
        term = -(q_t * ref_log_softmax(z / temperature)).sum()
        total = total + (1 if weights is None else weights[b]) * term
    count = len(student) if divisor is None else divisor
    return loss_weight * temperature**2 * total / count


def ref_kd(student, teacher, temperature):
    """Hinton's T^2 KL(softmax(z_t / T) || softmax(z_s / T)), mean over B."""
    total = 0
    for z_s, z_t in zip(student, teacher):
        log_q = ref_log_softmax(z_t / temperature)
        total = total + (torch.exp(log_q) *
                         (log_q - ref_log_softmax(z_s / temperature))).sum()
    return temperature**2 * total / len(student)


def random_logits(*shape, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=DTYPE) * scale


def value_and_grad(loss_fn, student):
    student = student.clone().requires_grad_(True)
    value = loss_fn(student)
    value.backward()
    return value.detach(), student.grad


@pytest.mark.parametrize('temperature', [1.0, 2.0, 4.0])
@pytest.mark.parametrize('loss_weight', [1.0, 0.5])
def test_matches_formula(temperature, loss_weight):
    student = random_logits(5, 7)
    targets = torch.softmax(random_logits(5, 7, seed=1), -1)
    loss = SoftLabelLoss(temperature=temperature, loss_weight=loss_weight)
    ours = value_and_grad(lambda z: loss(z, targets), student)
    ref = value_and_grad(
        lambda z: ref_soft_label_loss(z, targets, temperature,
                                      loss_weight=loss_weight), student)
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ours[1], ref[1], rtol=1e-9, atol=1e-12)


def test_weights_and_avg_factor():
    student = random_logits(4, 6)
    targets = torch.softmax(random_logits(4, 6, seed=2), -1)
    weights = torch.tensor([1.0, 0.0, 2.0, 0.5], dtype=DTYPE)
    ours = SoftLabelLoss(temperature=3.0)(student, targets, weight=weights,
                                          avg_factor=10)
    ref = ref_soft_label_loss(student, targets, 3.0, weights, divisor=10)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)


def test_temperature_one_is_mmpretrain_soft_cross_entropy():
    """FKD's loss as the authors (and mmpretrain's use_soft) compute it."""
    from mmpretrain.models.losses import CrossEntropyLoss
    student = random_logits(6, 10)
    targets = torch.softmax(random_logits(6, 10, seed=3), -1)
    ours = value_and_grad(lambda z: SoftLabelLoss()(z, targets), student)
    theirs = value_and_grad(
        lambda z: CrossEntropyLoss(use_soft=True)(z, targets), student)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('temperature', [2.0, 4.0])
def test_full_temperature_one_softmax_gives_kd_gradients(temperature):
    """Softened at T, the teacher's stored T = 1 softmax is its softmax at
    T: the gradients are KD's, the value KD's plus the target's entropy."""
    student = random_logits(5, 10)
    teacher = random_logits(5, 10, seed=4, scale=6.0)
    stored = torch.softmax(teacher, -1)
    ours = value_and_grad(
        lambda z: SoftLabelLoss(temperature=temperature)(z, stored), student)
    kd = value_and_grad(lambda z: ref_kd(z, teacher, temperature), student)
    torch.testing.assert_close(ours[1], kd[1], rtol=1e-9, atol=1e-12)
    q_t = torch.softmax(teacher / temperature, -1)
    entropy = -(q_t * q_t.log()).sum(-1).mean()
    torch.testing.assert_close(ours[0], kd[0] + temperature**2 * entropy,
                               rtol=1e-9, atol=1e-12)
    assert not torch.allclose(
        ours[1], value_and_grad(lambda z: SoftLabelLoss()(z, stored),
                                student)[1])


def test_zero_probabilities_stay_zero_and_finite():
    """marginal_renorm and hard labels hold zeros: no NaN at any T."""
    student = random_logits(3, 5)
    targets = torch.tensor([[0.7, 0.3, 0, 0, 0], [0, 0, 1.0, 0, 0],
                            [0.2, 0.2, 0.2, 0.2, 0.2]], dtype=DTYPE)
    value, grad = value_and_grad(
        lambda z: SoftLabelLoss(temperature=4.0)(z, targets), student)
    ref = value_and_grad(lambda z: ref_soft_label_loss(z, targets, 4.0),
                         student)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(value, ref[0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, ref[1], rtol=1e-9, atol=1e-12)


def test_float32_under_bf16_autocast_and_no_target_grad():
    student = random_logits(4, 5).float().requires_grad_(True)
    targets = torch.softmax(random_logits(4, 5, seed=5), -1).float()
    targets.requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = SoftLabelLoss(temperature=2.0)(student.bfloat16(), targets)
    assert loss.dtype == torch.float32
    loss.backward()
    assert targets.grad is None and student.grad is not None


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match='temperature must be positive'):
        SoftLabelLoss(temperature=0)
    loss = SoftLabelLoss()
    with pytest.raises(ValueError, match='same shape'):
        loss(random_logits(4, 5), torch.rand(4, 6, dtype=DTYPE))
    with pytest.raises(ValueError, match='CrossEntropyLoss instead'):
        loss(random_logits(4, 5), torch.tensor([0, 1, 2, 3]))


def test_builds_as_an_mmpretrain_head_loss():
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        head = MODELS.build(dict(
            type='LinearClsHead', num_classes=5, in_channels=8,
            loss=dict(type='SoftLabelLoss', temperature=4.0)))
    assert isinstance(head.loss_module, SoftLabelLoss)
    assert head.loss_module.temperature == 4.0
