# Copyright (c) mmkd_plugin contributors.
"""QualityFocalKDLoss (BCKD / CrossKD classification KD) against a float64
reference written from the formula in shared/reference/methods.md (explicit
sigmoid and logs, no shared code with the library)."""
import pytest
import torch
from mmdet.registry import MODELS

from mmkd_plugin.models.losses import QualityFocalKDLoss

DTYPE = torch.float64


def ref_qfkd(student,
             teacher,
             beta=1.0,
             weight=None,
             avg_factor=None,
             loss_weight=1.0):
    """sum_{i,c} w * BCE(p, q) * |p - q|^beta / avg_factor, written out."""
    p = 1.0 / (1.0 + torch.exp(-student))
    q = 1.0 / (1.0 + torch.exp(-teacher.detach()))
    bce = -(q * torch.log(p) + (1.0 - q) * torch.log(1.0 - p))
    per_element = bce * torch.abs(p - q)**beta
    if weight is not None:
        if weight.dim() < per_element.dim():
            weight = weight[..., None]
        per_element = per_element * weight
    total = loss_weight * per_element.sum()
    return total if avg_factor is None else total / avg_factor


def logits(*shape, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen, dtype=DTYPE) *
            scale).requires_grad_()


@pytest.mark.parametrize('beta', [1.0, 2.0, 0.5])
@pytest.mark.parametrize('weight_kind', [None, 'location', 'element'])
@pytest.mark.parametrize('avg_factor', [None, 3.5])
def test_matches_formula_values_and_gradients(beta, weight_kind, avg_factor):
    student, teacher = logits(11, 7, seed=1), logits(11, 7, seed=2)
    gen = torch.Generator().manual_seed(3)
    weight = {
        None: None,
        'location': torch.rand(11, generator=gen, dtype=DTYPE),
        'element': torch.rand(11, 7, generator=gen, dtype=DTYPE)
    }[weight_kind]
    loss = QualityFocalKDLoss(beta=beta, loss_weight=1.7)
    value = loss(student, teacher, weight=weight, avg_factor=avg_factor)
    expected = ref_qfkd(student, teacher, beta, weight, avg_factor, 1.7)
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=0)
    grad, = torch.autograd.grad(value, student)
    ref_grad, = torch.autograd.grad(expected, student)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-14)


def test_factor_is_not_detached():
    """The gradient includes d|p - q|/dz: it differs from the gradient of
    BCE weighted by the detached factor."""
    student, teacher = logits(5, 3, seed=4), logits(5, 3, seed=5)
    grad, = torch.autograd.grad(QualityFocalKDLoss()(student, teacher),
                                student)
    p, q = student.sigmoid(), teacher.sigmoid()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        student, q.detach(), reduction='none')
    detached = (bce * (p - q).abs().detach()).sum()
    detached_grad, = torch.autograd.grad(detached, student)
    assert not torch.allclose(grad, detached_grad, rtol=1e-3)


def test_no_gradient_into_teacher_and_zero_at_equal_scores():
    student = logits(4, 6, seed=6)
    teacher = student.detach().clone().requires_grad_()
    value = QualityFocalKDLoss()(student, teacher)
    assert value.item() == 0.0  # the factor |p - q| is 0 everywhere
    value = QualityFocalKDLoss()(student, logits(4, 6, seed=7))
    value.backward()
    assert teacher.grad is None


def test_higher_rank_inputs_match_flattened():
    """(N, A, C) logits with (N, A) weights give the (N*A, C) value."""
    student, teacher = logits(2, 5, 3, seed=8), logits(2, 5, 3, seed=9)
    weight = torch.rand(2, 5, dtype=DTYPE)
    loss = QualityFocalKDLoss()
    torch.testing.assert_close(loss(student, teacher, weight=weight),
                               ref_qfkd(student.reshape(10, 3),
                                        teacher.reshape(10, 3),
                                        weight=weight.reshape(10)),
                               rtol=1e-10,
                               atol=0)


@pytest.mark.parametrize('student_shape, teacher_shape, weight_shape, match', [
    ((4, 3), (4, 5), None, r'same \(\.\.\., C\) shape.*\(4, 3\).*\(4, 5\)'),
    ((4, 3), (2, 3), None, r'student \(4, 3\) and teacher \(2, 3\)'),
    ((4, 3), (4, 3), (3, ), r'weight must be per location \(4,\).*\(3,\)'),
    ((4, 3), (4, 3), (4, 1), r'per element \(4, 3\), got \(4, 1\)'),
])
def test_shape_mismatch_is_a_clear_error(student_shape, teacher_shape,
                                         weight_shape, match):
    weight = None if weight_shape is None else torch.ones(weight_shape)
    with pytest.raises(ValueError, match='QualityFocalKDLoss.*' + match):
        QualityFocalKDLoss()(torch.zeros(student_shape),
                             torch.zeros(teacher_shape),
                             weight=weight)


def test_float32_under_bf16_autocast():
    """bfloat16 logits inside CPU autocast give the float32 value of the
    same logits upcast, computed outside autocast."""
    gen = torch.Generator().manual_seed(10)
    student = (torch.randn(9, 8, generator=gen) * 3).bfloat16()
    teacher = (torch.randn(9, 8, generator=gen) * 3).bfloat16()
    weight = torch.rand(9, generator=gen).bfloat16()
    loss = QualityFocalKDLoss()
    expected = loss(student.float(),
                    teacher.float(),
                    weight=weight.float(),
                    avg_factor=4.0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(student, teacher, weight=weight, avg_factor=4.0)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=0)


def test_registered_and_checks_beta():
    loss = MODELS.build(
        dict(type='QualityFocalKDLoss', beta=2.0, loss_weight=0.5))
    assert isinstance(loss, QualityFocalKDLoss)
    assert (loss.beta, loss.loss_weight) == (2.0, 0.5)
    with pytest.raises(ValueError, match='beta must be >= 0'):
        QualityFocalKDLoss(beta=-1.0)
