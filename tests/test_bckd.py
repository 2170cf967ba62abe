# Copyright (c) mmkd_plugin contributors.
"""BCKD: the GIoU KD loss.

The references below are written from the formulas in
shared/reference/methods.md (section BCKD) in float64 with explicit loops,
sigmoid, softmax and box arithmetic; they share no code with the library.
"""
import pytest
import torch

from mmkd_plugin.models.losses import GIoUKDLoss

DTYPE = torch.float64


# --------------------------------------------------------------- references
def ref_giou(a, b, eps=1e-6):
    """GIoU of two x1y1x2y2 boxes (1-D tensors), union and enclosing area
    floored at eps."""
    iw = torch.clamp(torch.min(a[2], b[2]) - torch.max(a[0], b[0]), min=0)
    ih = torch.clamp(torch.min(a[3], b[3]) - torch.max(a[1], b[1]), min=0)
    inter = iw * ih
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = torch.clamp(area_a + area_b - inter, min=eps)
    ew = torch.max(a[2], b[2]) - torch.min(a[0], b[0])
    eh = torch.max(a[3], b[3]) - torch.min(a[1], b[1])
    enclose = torch.clamp(ew * eh, min=eps)
    return inter / union - (enclose - union) / enclose


def ref_bce_focal(s, t):
    """sum_c BCE(sigmoid(s_c), sigmoid(t_c)) * |p_c - q_c| of one
    location."""
    p = 1 / (1 + torch.exp(-s))
    q = 1 / (1 + torch.exp(-t))
    return (-(q * torch.log(p) + (1 - q) * torch.log(1 - p)) *
            torch.abs(p - q)).sum()


def ref_decode(reg, col, row):
    """Box in stride units from one location's (4 * K) distribution
    logits: side d = sum_i softmax(z)_i * i, sides left, top, right,
    bottom around the anchor centre (col, row)."""
    bins = reg.shape[0] // 4
    d = [(torch.softmax(reg[k * bins:(k + 1) * bins], 0) *
          torch.arange(bins, dtype=reg.dtype)).sum() for k in range(4)]
    return torch.stack([col - d[0], row - d[1], col + d[2], row + d[3]])


def random_boxes(n, gen):
    xy = torch.rand(n, 2, generator=gen, dtype=DTYPE) * 10
    wh = torch.rand(n, 2, generator=gen, dtype=DTYPE) * 6 + 0.1
    return torch.cat([xy, xy + wh], 1)


# --------------------------------------------------------------- GIoUKDLoss
@pytest.mark.parametrize('with_weight, avg_factor', [(False, None),
                                                     (True, 2.5)])
def test_giou_kd_loss_values_and_gradients(with_weight, avg_factor):
    gen = torch.Generator().manual_seed(0)
    student = random_boxes(13, gen).requires_grad_()
    teacher = random_boxes(13, gen).requires_grad_()
    weight = torch.rand(13, generator=gen, dtype=DTYPE) if with_weight \
        else None
    value = GIoUKDLoss(loss_weight=4.0)(student,
                                        teacher,
                                        weight=weight,
                                        avg_factor=avg_factor)
    terms = torch.stack([1 - ref_giou(s, t) for s, t in zip(student, teacher)])
    if weight is not None:
        terms = terms * weight
    expected = 4.0 * terms.sum() / (avg_factor or 1.0)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)
    grad, = torch.autograd.grad(value, student)
    ref_grad, = torch.autograd.grad(expected, student)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-14)
    value = GIoUKDLoss()(student, teacher)
    value.backward()
    assert teacher.grad is None


def test_giou_kd_loss_hand_values():
    """Disjoint unit squares one apart: IoU 0, enclosing 3, union 2, GIoU
    -1/3; identical boxes: 0."""
    a = torch.tensor([[0., 0., 1., 1.], [0., 0., 2., 2.]], dtype=DTYPE)
    b = torch.tensor([[2., 0., 3., 1.], [0., 0., 2., 2.]], dtype=DTYPE)
    value = GIoUKDLoss()(a, b, weight=torch.tensor([1., 5.], dtype=DTYPE))
    torch.testing.assert_close(value, torch.tensor(4 / 3, dtype=DTYPE))


@pytest.mark.parametrize('s_shape, t_shape, w_shape, match', [
    ((5, 4), (5, 3), None, r'\(\.\.\., B, 4\).*\(5, 4\).*\(5, 3\)'),
    ((4, ), (4, ), None, r'student \(4,\) and teacher \(4,\)'),
    ((5, 4), (5, 4), (5, 1), r'one value per box \(5,\), got \(5, 1\)'),
])
def test_giou_kd_loss_shape_errors(s_shape, t_shape, w_shape, match):
    weight = None if w_shape is None else torch.ones(w_shape)
    with pytest.raises(ValueError, match='GIoUKDLoss.*' + match):
        GIoUKDLoss()(torch.zeros(s_shape), torch.zeros(t_shape), weight=weight)


def test_giou_kd_loss_float32_under_bf16_autocast():
    gen = torch.Generator().manual_seed(1)
    student = random_boxes(9, gen).bfloat16()
    teacher = random_boxes(9, gen).bfloat16()
    expected = GIoUKDLoss()(student.float(), teacher.float())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = GIoUKDLoss()(student, teacher)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=0)
