# Copyright (c) mmkd_plugin contributors.
"""ReviewKD (ABF fusion + HCL) against an independent float64 reference.

The reference below is written from shared/reference/methods.md and the
authors' code with explicit loops and einsums (adaptive pooling bin by bin,
nearest resizing by index, convs as einsums, BN from batch statistics); it
shares no code with the library and only reads the ABF parameters.
"""
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import MODELS

from mmkd_plugin.models.losses import ReviewKDLoss
from mmkd_plugin.models.losses.review_kd_loss import hierarchical_context_loss

RTOL = 1e-10
ATOL = 1e-12
BN_EPS = 1e-5

# Pool size -> weight of the HCL terms used at a given height H, before
# normalising by 1 + sum(weights): the weights halve per pool actually used
# (authors' ``cnt /= 2`` only for sizes l < H).
HCL_WEIGHTS = {
    1: {},
    2: {1: 0.5},
    3: {2: 0.5, 1: 0.25},
    4: {2: 0.5, 1: 0.25},
}
HCL_WEIGHTS_LARGE = {4: 0.5, 2: 0.25, 1: 0.125}


# ------------------------------------------------------------ reference
def avg_pool_ref(x, size):
    """Adaptive average pooling to size x size, one bin at a time."""
    height, width = x.shape[2:]
    rows = []
    for i in range(size):
        h0, h1 = (i * height) // size, -((-(i + 1) * height) // size)
        cols = []
        for j in range(size):
            w0, w1 = (j * width) // size, -((-(j + 1) * width) // size)
            cols.append(x[:, :, h0:h1, w0:w1].mean(dim=(2, 3)))
        rows.append(torch.stack(cols, dim=-1))
    return torch.stack(rows, dim=-2)


def mse_ref(a, b):
    return ((a - b)**2).sum() / a.numel()


def hcl_ref(pred, target):
    height = pred.shape[2]
    weights = HCL_WEIGHTS.get(height, HCL_WEIGHTS_LARGE)
    loss = mse_ref(pred, target)
    for size, weight in weights.items():
        loss = loss + weight * mse_ref(avg_pool_ref(pred, size),
                                       avg_pool_ref(target, size))
    return loss / (1.0 + sum(weights.values()))


def nearest_ref(x, size):
    """Nearest resize: output pixel i reads input floor(i * in / out)."""
    rows = torch.tensor([math.floor(i * x.shape[2] / size[0])
                         for i in range(size[0])])
    cols = torch.tensor([math.floor(j * x.shape[3] / size[1])
                         for j in range(size[1])])
    return x[:, :, rows][:, :, :, cols]


def conv1x1_ref(x, weight, bias=None):
    out = torch.einsum('nchw,oc->nohw', x, weight[:, :, 0, 0])
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def conv3x3_ref(x, weight):
    n, c, h, w = x.shape
    padded = x.new_zeros(n, c, h + 2, w + 2)
    padded[:, :, 1:h + 1, 1:w + 1] = x
    return sum(
        torch.einsum('nchw,oc->nohw', padded[:, :, dy:dy + h, dx:dx + w],
                     weight[:, :, dy, dx])
        for dy in range(3) for dx in range(3))


def bn_ref(x, gamma, beta):
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x - mean)**2).mean(dim=(0, 2, 3), keepdim=True)
    return ((x - mean) / torch.sqrt(var + BN_EPS) * gamma.view(1, -1, 1, 1)
            + beta.view(1, -1, 1, 1))


def review_kd_ref(params, students, teachers, use_pooled, loss_weight):
    """The ReviewKD loss from the spec; ``params[k]`` holds ABF k's tensors."""
    students, teachers = list(students), list(teachers)
    if use_pooled:
        students.append(students[-1].mean(dim=(2, 3), keepdim=True))
        teachers.append(teachers[-1].mean(dim=(2, 3), keepdim=True))
    outputs = [None] * len(students)
    residual = None
    for k in reversed(range(len(students))):
        p = params[k]
        x = bn_ref(conv1x1_ref(students[k], p['reduce.0.weight']),
                   p['reduce.1.weight'], p['reduce.1.bias'])
        if residual is not None:
            r = nearest_ref(residual, x.shape[2:])
            logits = conv1x1_ref(torch.cat([x, r], dim=1),
                                 p['attention.weight'], p['attention.bias'])
            att = 1.0 / (1.0 + torch.exp(-logits))
            x = x * att[:, 0:1] + r * att[:, 1:2]
        if x.shape[2:] != teachers[k].shape[2:]:
            x = nearest_ref(x, teachers[k].shape[2:])
        outputs[k] = bn_ref(conv3x3_ref(x, p['output.0.weight']),
                            p['output.1.weight'], p['output.1.bias'])
        residual = x
    return loss_weight * sum(
        hcl_ref(out, t) for out, t in zip(outputs, teachers))


# -------------------------------------------------------------- helpers
STUDENT_CHANNELS = [3, 4, 5, 6]
TEACHER_CHANNELS = [4, 5, 6, 7]
# Level 2: the student's 3x3 is resized to the teacher's 4x4; residuals go
# 1x1 -> 2x2, 2x2 -> 3x3, 4x4 -> 5x5, 5x5 -> 10x9 (non-integer ratios).
STUDENT_SIZES = [(10, 9), (5, 5), (3, 3), (2, 2)]
TEACHER_SIZES = [(10, 9), (5, 5), (4, 4), (2, 2)]


@pytest.fixture(autouse=True)
def reset_epoch():
    """Leave the MessageHub's epoch as a fresh runner would."""
    yield
    MessageHub.get_current_instance().update_info('epoch', 0)


def make_feats(channels, sizes, seed, batch=3):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, c, *hw, generator=gen, dtype=torch.float64)
        for c, hw in zip(channels, sizes)
    ]


def make_loss(levels=slice(None), **kwargs):
    loss = ReviewKDLoss(STUDENT_CHANNELS[levels], TEACHER_CHANNELS[levels],
                        **kwargs).double().train()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in loss.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
    return loss


def make_inputs(levels=slice(None)):
    students = make_feats(STUDENT_CHANNELS[levels], STUDENT_SIZES[levels], 1)
    teachers = make_feats(TEACHER_CHANNELS[levels], TEACHER_SIZES[levels], 2)
    return [s.requires_grad_() for s in students], teachers


def reference_params(loss):
    """Leaf copies of every ABF's parameters, shallow to deep."""
    return [{
        name: p.detach().clone().requires_grad_()
        for name, p in fusion.named_parameters()
    } for fusion in loss.fusions]


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize('height,width', [(1, 1), (2, 3), (3, 3), (4, 2),
                                          (5, 4), (7, 6), (9, 9)])
def test_hcl_matches_reference(height, width):
    gen = torch.Generator().manual_seed(height * 10 + width)
    pred = torch.randn(2, 3, height, width, generator=gen,
                       dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 3, height, width, generator=gen,
                         dtype=torch.float64, requires_grad=True)
    value = hierarchical_context_loss(pred, target)
    grads = torch.autograd.grad(value, [pred, target])
    ref_pred = pred.detach().clone().requires_grad_()
    ref_target = target.detach().clone().requires_grad_()
    ref_value = hcl_ref(ref_pred, ref_target)
    ref_grads = torch.autograd.grad(ref_value, [ref_pred, ref_target])
    torch.testing.assert_close(value, ref_value, rtol=RTOL, atol=ATOL)
    for grad, ref_grad in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('use_pooled', [True, False])
@pytest.mark.parametrize('levels', [slice(None), slice(1, None)],
                         ids=['4levels', '3levels'])
def test_fusion_and_loss_match_reference(levels, use_pooled):
    loss = make_loss(levels, use_pooled_feature=use_pooled,
                     loss_weight=1.7)
    assert len(loss.fusions) == len(STUDENT_CHANNELS[levels]) + use_pooled
    students, teachers = make_inputs(levels)
    params = reference_params(loss)
    ref_students = [s.detach().clone().requires_grad_() for s in students]

    value = loss(students, teachers, None)
    ref_value = review_kd_ref(params, ref_students, teachers, use_pooled,
                              1.7)
    torch.testing.assert_close(value, ref_value, rtol=RTOL, atol=ATOL)

    value.backward()
    ref_value.backward()
    for s, ref_s in zip(students, ref_students):
        torch.testing.assert_close(s.grad, ref_s.grad, rtol=RTOL, atol=ATOL)
    for fusion, ref in zip(loss.fusions, params):
        for name, p in fusion.named_parameters():
            torch.testing.assert_close(p.grad, ref[name].grad, rtol=RTOL,
                                       atol=ATOL, msg=name)


def test_fusion_outputs_have_teacher_shapes():
    loss = make_loss()
    students, teachers = make_inputs()
    pooled = [students[-1].mean(dim=(2, 3), keepdim=True)]
    outputs = loss.review(students + pooled,
                          TEACHER_SIZES + [(1, 1)])
    assert [tuple(o.shape) for o in outputs] == [
        (3, c, *hw) for c, hw in zip(TEACHER_CHANNELS + [7],
                                     TEACHER_SIZES + [(1, 1)])
    ]
    assert loss.mid_channels == 6  # min(512, last student channels)
    assert loss.fusions[-1].attention is None
    assert all(f.attention is not None for f in loss.fusions[:-1])
    assert loss.fusions[0].attention.bias is not None
    assert loss.fusions[0].reduce[0].bias is None
    assert loss.fusions[0].output[0].bias is None


def test_gradient_reaches_every_fusion_and_student_not_teacher():
    loss = make_loss()
    students, teachers = make_inputs()
    teachers = [t.requires_grad_() for t in teachers]
    loss(students, teachers, None).backward()
    for index, fusion in enumerate(loss.fusions):
        for name, p in fusion.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, \
                f'fusion {index} {name}'
    for s in students:
        assert s.grad is not None and s.grad.abs().sum() > 0
    assert all(t.grad is None for t in teachers)


def test_warmup_factor_scales_loss():
    loss = make_loss()
    students, teachers = make_inputs()
    full = loss(students, teachers, None).detach()
    loss.warmup_epochs = 4
    hub = MessageHub.get_current_instance()
    for runner_epoch, factor in [(0, 0.25), (2, 0.75), (3, 1.0), (9, 1.0)]:
        hub.update_info('epoch', runner_epoch)
        torch.testing.assert_close(
            loss(students, teachers, None).detach(), factor * full,
            rtol=RTOL, atol=ATOL)


def test_builds_from_registry_with_default_mid_channels():
    loss = MODELS.build(
        dict(type='ReviewKDLoss', student_channels=[64, 128, 256, 512],
             teacher_channels=[64, 128, 256, 1024]))
    assert ReviewKDLoss.takes_all_levels
    assert loss.mid_channels == 512
    assert len(loss.fusions) == 5
    assert loss.fusions[-1].output[0].out_channels == 1024


@pytest.mark.parametrize('kwargs,match', [
    (dict(student_channels=[3, 4], teacher_channels=[4, 5, 6]),
     'one student and one teacher level'),
    (dict(student_channels=[], teacher_channels=[]), 'student_channels'),
    (dict(student_channels=4, teacher_channels=[4]), 'student_channels'),
    (dict(student_channels=[4], teacher_channels=[0]), 'teacher_channels'),
    (dict(student_channels=[4], teacher_channels=[4], mid_channels=0),
     'mid_channels'),
    (dict(student_channels=[4], teacher_channels=[4], warmup_epochs=-1),
     'warmup_epochs'),
])
def test_bad_construction_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReviewKDLoss(**kwargs)


def test_bad_inputs_raise():
    loss = make_loss()
    students, teachers = make_inputs()
    with pytest.raises(ValueError, match='built for 4 levels, got 3 student'):
        loss(students[1:], teachers, None)
    with pytest.raises(ValueError, match='got 4 student and 3 teacher'):
        loss(students, teachers[:3], None)
    with pytest.raises(ValueError, match='level 1: .* got student'):
        loss(students, teachers[:1] + teachers[:1] + teachers[2:], None)
    with pytest.raises(ValueError, match='level 0'):
        loss([students[0][0]] + students[1:], teachers, None)
    with pytest.raises(ValueError, match='level 3'):
        loss(students, teachers[:3] + [teachers[3][:2]], None)
