# Copyright (c) mmkd_plugin contributors.
"""Feature losses CWD, FGD, MGD, PKD and FitNet against independent
references.

Every reference below is written from the formulas in
shared/reference/methods.md with plain loops / broadcasting and shares no
code with the library (it only reads the loss modules' parameters).
"""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.structures import InstanceData

from mmkd_plugin.models.losses import (CWDLoss, FGDLoss, FitNetLoss,
                                       MGDLoss, PKDLoss)
from mmkd_plugin.models.losses.fgd_masks import fgd_masks as fgd_masks_multi
from mmkd_plugin.models.losses.mgd_loss import mask_draw_seed

RTOL = 1e-5
ATOL = 1e-12
PAD_HW = (64, 104)  # batch_input_shape (H_pad, W_pad); stride 8 -> (8, 13)
FEAT_HW = (8, 13)


# --------------------------------------------------------------- helpers
def make_sample(boxes, img_shape, pad_hw=PAD_HW, as_hbox=False):
    """DetDataSample with gt boxes and img / batch_input shapes."""
    ds = DetDataSample()
    ds.set_metainfo(dict(img_shape=img_shape, batch_input_shape=pad_hw))
    inst = InstanceData()
    bboxes = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    inst.bboxes = HorizontalBoxes(bboxes) if as_hbox else bboxes
    inst.labels = torch.zeros(bboxes.shape[0], dtype=torch.long)
    ds.gt_instances = inst
    return ds


def randomize(module, seed=0, std=0.3):
    """Give every parameter random values (GC's last conv is zero-init)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)


def feats(n, c_s, c_t, hw, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(n, c_s, *hw, generator=gen, dtype=dtype)
    t = torch.randn(n, c_t, *hw, generator=gen, dtype=dtype)
    return s.requires_grad_(), t


def fgd_masks(boxes_list, batch_input_shape, feat_hw):
    """The library's FGD masks of a single level."""
    return fgd_masks_multi(boxes_list, batch_input_shape, [feat_hw])[0]


def assert_close(a, b, rtol=RTOL, atol=ATOL):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def check_value_and_grads(loss_fn, ref_fn, student, params):
    """Compare loss values and grads w.r.t. the student and parameters."""
    inputs = [student] + list(params)
    ours = loss_fn()
    ref = ref_fn()
    assert_close(ours, ref)
    g_ours = torch.autograd.grad(ours, inputs, allow_unused=True)
    g_ref = torch.autograd.grad(ref, inputs, allow_unused=True)
    for go, gr in zip(g_ours, g_ref):
        if gr is None:
            assert go is None or torch.all(go == 0)
        else:
            assert go is not None
            assert_close(go, gr)
    return ours


# ------------------------------------------------------ FGD reference
def ref_fgd_masks(samples, feat_hw):
    """Loop over images, boxes and cells (clipped to the grid)."""
    h, w = feat_hw
    n = len(samples)
    fg = torch.zeros(n, h, w, dtype=torch.float64)
    for i, ds in enumerate(samples):
        pad_h, pad_w = ds.metainfo['batch_input_shape']
        bboxes = ds.gt_instances.bboxes
        if isinstance(bboxes, HorizontalBoxes):
            bboxes = bboxes.tensor
        for box in bboxes.tolist():
            x1 = math.floor(box[0] / pad_w * w)
            y1 = math.floor(box[1] / pad_h * h)
            x2 = math.ceil(box[2] / pad_w * w)
            y2 = math.ceil(box[3] / pad_h * h)
            if x2 < x1 or y2 < y1:  # inverted: covers no cell
                continue
            value = 1.0 / ((y2 - y1 + 1) * (x2 - x1 + 1))
            for y in range(max(y1, 0), min(y2, h - 1) + 1):
                for x in range(max(x1, 0), min(x2, w - 1) + 1):
                    fg[i, y, x] = max(fg[i, y, x].item(), value)
    bg = torch.zeros_like(fg)
    for i in range(n):
        count = int((fg[i] == 0).sum())
        for y in range(h):
            for x in range(w):
                if fg[i, y, x] == 0:
                    bg[i, y, x] = 1.0 / count
    return fg, bg


def ref_attention(x, temp):
    n, c, h, w = x.shape
    spatial = x.abs().mean(1).reshape(n, -1) / temp
    spatial = h * w * torch.softmax(spatial, 1).reshape(n, h, w)
    channel = c * torch.softmax(x.abs().mean((2, 3)) / temp, 1)
    return spatial, channel


def ref_gc(x, block):
    """GCNet block from its parameters: softmax pooling + channel add."""
    n, c, h, w = x.shape
    logits = (block.conv_mask.weight.reshape(1, c, 1, 1) * x).sum(1)
    logits = logits.reshape(n, h * w) + block.conv_mask.bias
    attn = torch.softmax(logits, dim=1)
    context = (x.reshape(n, c, h * w) * attn[:, None, :]).sum(-1)  # (n, c)
    conv1, ln, _, conv2 = block.channel_add_conv
    planes = conv1.out_channels
    y = context @ conv1.weight.reshape(planes, c).t() + conv1.bias
    mu = y.mean(1, keepdim=True)
    var = ((y - mu)**2).mean(1, keepdim=True)
    y = (y - mu) / torch.sqrt(var + ln.eps)
    y = y * ln.weight.reshape(-1) + ln.bias.reshape(-1)
    y = torch.relu(y)
    y = y @ conv2.weight.reshape(c, planes).t() + conv2.bias
    return x + y[:, :, None, None]


def ref_fgd(loss, student, teacher, samples):
    s = student
    if isinstance(loss.align, torch.nn.Conv2d):
        s = F.conv2d(student, loss.align.weight, loss.align.bias)
    n = s.shape[0]
    fg, bg = ref_fgd_masks(samples, s.shape[2:])
    sa_t, ca_t = ref_attention(teacher, loss.temp)
    sa_s, ca_s = ref_attention(s, loss.temp)
    weight = sa_t[:, None] * ca_t[:, :, None, None] * (s - teacher)**2
    fg_loss = (fg[:, None] * weight).sum() / n
    bg_loss = (bg[:, None] * weight).sum() / n
    att_loss = ((ca_s - ca_t).abs().sum() + (sa_s - sa_t).abs().sum()) / n
    glob = ((ref_gc(s, loss.gc_student) -
             ref_gc(teacher, loss.gc_teacher))**2).sum() / n
    return (loss.alpha_fgd * fg_loss + loss.beta_fgd * bg_loss +
            loss.gamma_fgd * att_loss + loss.lambda_fgd * glob)


def fgd_module(c_s, c_t, **kwargs):
    # Larger weights than the defaults so every term matters numerically.
    kwargs = dict(alpha_fgd=1.0, beta_fgd=0.5, gamma_fgd=0.3,
                  lambda_fgd=0.2, **kwargs)
    loss = FGDLoss(c_s, c_t, **kwargs).double()
    randomize(loss)
    return loss


PADDED_SAMPLES = [
    # full-size image, two overlapping boxes (the smaller must win)
    dict(boxes=[[8, 8, 60, 40], [20, 16, 36, 30]], img_shape=(64, 104)),
    # image smaller than the padded batch: mapped with batch_input_shape
    dict(boxes=[[5.5, 3.2, 30.1, 22.7]], img_shape=(48, 80)),
]
EDGE_SAMPLES = [
    # no gt boxes
    dict(boxes=[], img_shape=(64, 104)),
    # on the border, crossing the border, degenerate zero-width, outside
    dict(boxes=[[90, 50, 104, 64], [-5, -3, 20, 10], [40, 10, 40, 30],
                [50.5, 20, 50.5, 20], [110, 70, 130, 90]],
         img_shape=(64, 104)),
    # one box covering the whole grid: no background cell
    dict(boxes=[[0, 0, 104, 64]], img_shape=(64, 104)),
]


def build_samples(specs, as_hbox=False):
    return [make_sample(as_hbox=as_hbox, **spec) for spec in specs]


# ------------------------------------------------------------ FGD tests
def test_fgd_mask_hand_computed():
    # box (8, 8, 24, 16) at stride 8 -> cols 1..3, rows 1..2, value 1/6;
    # inside it (16, 8, 20, 12) -> cols 2..3 (ceil 2.5), rows 1..2: 1/6
    # too; a smaller box (16, 0, 17, 7) -> cols 2..3, rows 0..1 -> 1/4.
    boxes = torch.tensor([[8., 8., 24., 16.], [16., 0., 17., 7.]])
    fg, bg = fgd_masks([boxes], PAD_HW, FEAT_HW)
    expected = torch.zeros(1, *FEAT_HW)
    expected[0, 1:3, 1:4] = 1 / 6
    expected[0, 0:2, 2:4] = 1 / 4
    assert_close(fg, expected)
    n_bg = (expected == 0).sum()
    assert_close(bg, (expected == 0).float() / n_bg)


def test_fgd_mask_uses_batch_input_shape():
    # Same box, image un-padded 32x52 inside a 64x104 batch: the mask must
    # not stretch it to the whole grid (the reference's img_shape mapping).
    fg, _ = fgd_masks([torch.tensor([[0., 0., 52., 32.]])], PAD_HW, FEAT_HW)
    assert fg[0, :5, :7].gt(0).all() and fg[0, 5:, :].eq(0).all()
    assert fg[0, :, 8:].eq(0).all()


@pytest.mark.parametrize('specs', [PADDED_SAMPLES, EDGE_SAMPLES])
@pytest.mark.parametrize('as_hbox', [False, True])
def test_fgd_masks_match_reference(specs, as_hbox):
    samples = build_samples(specs, as_hbox)
    boxes = [ds.gt_instances.bboxes for ds in samples]
    boxes = [b.tensor if isinstance(b, HorizontalBoxes) else b for b in boxes]
    fg, bg = fgd_masks(boxes, PAD_HW, FEAT_HW)
    ref_fg, ref_bg = ref_fgd_masks(samples, FEAT_HW)
    assert_close(fg, ref_fg)
    assert_close(bg, ref_bg)


def test_fgd_masks_edge_semantics():
    fg, bg = ref_fgd_masks(build_samples(EDGE_SAMPLES), FEAT_HW)
    assert fg[0].eq(0).all() and torch.allclose(bg[0], bg[0].new_tensor(
        1 / (FEAT_HW[0] * FEAT_HW[1])))
    assert fg[2].gt(0).all() and bg[2].eq(0).all()
    ours_fg, ours_bg = fgd_masks(
        [ds.gt_instances.bboxes for ds in build_samples(EDGE_SAMPLES)],
        PAD_HW, FEAT_HW)
    assert_close(ours_fg, fg)
    assert_close(ours_bg, bg)


def test_fgd_masks_no_boxes_and_integer_boxes():
    empty = [torch.zeros(0, 4), torch.zeros(0, 4)]
    fg, bg = fgd_masks(empty, PAD_HW, FEAT_HW)
    assert fg.shape == (2, *FEAT_HW) and fg.eq(0).all()
    assert_close(bg, torch.full_like(bg, 1 / (FEAT_HW[0] * FEAT_HW[1])))
    int_boxes = [torch.tensor([[8, 8, 60, 40], [20, 16, 36, 30]])]
    fg_int, bg_int = fgd_masks(int_boxes, PAD_HW, FEAT_HW)
    fg_flt, bg_flt = fgd_masks([int_boxes[0].float()], PAD_HW, FEAT_HW)
    assert fg_int.dtype == torch.float32
    assert torch.equal(fg_int, fg_flt) and torch.equal(bg_int, bg_flt)


EQUAL_COUNT_SAMPLES = [
    # same number of boxes in every image (stacked without padding)
    dict(boxes=[[8, 8, 60, 40], [-5, 20, 30, 70]], img_shape=(64, 104)),
    dict(boxes=[[0, 0, 104, 64], [50.5, 20, 50.5, 20]], img_shape=(48, 80)),
]
INVALID_SAMPLES = [
    # an image whose only box is inverted on one axis (x2 < x1): covers
    # no cell, like an empty range in the reference loops
    dict(boxes=[[60, 8, 20, 40]], img_shape=(64, 104)),
    # inverted on both axes, next to a valid box
    dict(boxes=[[60, 40, 20, 8], [8, 8, 24, 16]], img_shape=(64, 104)),
]


@pytest.mark.parametrize('specs', [
    PADDED_SAMPLES, EDGE_SAMPLES, EQUAL_COUNT_SAMPLES, INVALID_SAMPLES
])
def test_fgd_masks_match_reference_more_layouts(specs):
    samples = build_samples(specs)
    fg, bg = fgd_masks([ds.gt_instances.bboxes for ds in samples], PAD_HW,
                       FEAT_HW)
    ref_fg, ref_bg = ref_fgd_masks(samples, FEAT_HW)
    assert_close(fg, ref_fg)
    assert_close(bg, ref_bg)
    assert fg.ge(0).all()


@pytest.mark.parametrize('specs', [
    PADDED_SAMPLES, EDGE_SAMPLES, EQUAL_COUNT_SAMPLES, INVALID_SAMPLES
])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_fgd_masks_multi_match_reference_per_level(specs, dtype):
    boxes = [ds.gt_instances.bboxes.to(dtype) for ds in build_samples(specs)]
    feat_hws = [(16, 26), FEAT_HW, (4, 7), (1, 1)]
    multi = fgd_masks_multi(boxes, PAD_HW, feat_hws)
    assert len(multi) == len(feat_hws)
    for hw, (fg, bg) in zip(feat_hws, multi):
        assert fg.dtype == dtype and fg.shape == (len(boxes), *hw)
        ref_fg, ref_bg = ref_fgd_masks(build_samples(specs), hw)
        assert_close(fg, ref_fg.to(dtype))
        assert_close(bg, ref_bg.to(dtype))


def test_fgd_masks_ignore_nan_boxes():
    # A box with a NaN coordinate covers nothing (it used to write NaN).
    boxes = torch.tensor([[8., 8., 60., 40.], [float('nan'), 0., 30., 30.]])
    fg, bg = fgd_masks([boxes], PAD_HW, FEAT_HW)
    ref_fg, ref_bg = ref_fgd_masks(
        [make_sample(boxes[:1].tolist(), PAD_HW)], FEAT_HW)
    assert_close(fg, ref_fg.float())
    assert_close(bg, ref_bg.float())


@pytest.mark.parametrize('specs', [PADDED_SAMPLES, EDGE_SAMPLES])
@pytest.mark.parametrize('channels', [(8, 8), (6, 8)])
def test_fgd_value_and_grads(specs, channels):
    samples = build_samples(specs)
    loss = fgd_module(*channels)
    student, teacher = feats(len(samples), *channels, FEAT_HW)
    check_value_and_grads(lambda: loss(student, teacher, samples),
                          lambda: ref_fgd(loss, student, teacher, samples),
                          student, loss.parameters())


def test_fgd_default_weights_and_precomputed_masks():
    samples = build_samples(PADDED_SAMPLES)
    loss = FGDLoss(8, 8).double()
    randomize(loss)
    student, teacher = feats(2, 8, 8, FEAT_HW)
    value = loss(student, teacher, samples)
    assert_close(value, ref_fgd(loss, student, teacher, samples))
    masks = fgd_masks([ds.gt_instances.bboxes for ds in samples], PAD_HW,
                      FEAT_HW)
    assert_close(loss(student, teacher, None, masks=masks), value)


def test_fgd_gradient_flow():
    samples = build_samples(PADDED_SAMPLES)
    loss = FGDLoss(6, 8).double()  # default init: GC last conv is zero
    student, teacher = feats(2, 6, 8, FEAT_HW)
    teacher.requires_grad_()
    loss(student, teacher, samples).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0
    last_t = loss.gc_teacher.channel_add_conv[-1]
    assert last_t.weight.grad is not None
    assert last_t.weight.grad.abs().sum() > 0
    assert last_t.bias.grad.abs().sum() > 0
    # with non-zero weights every teacher-side GC parameter learns
    loss.zero_grad()
    randomize(loss)
    loss(student, teacher, samples).backward()
    for name, p in loss.gc_teacher.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert teacher.grad is None


def test_fgd_missing_data_samples():
    student, teacher = feats(2, 8, 8, FEAT_HW)
    with pytest.raises(ValueError, match='data sample'):
        FGDLoss(8, 8).double()(student, teacher)


# ------------------------------------------------------------ MGD tests
def ref_mgd(loss, student, teacher, step):
    """The reference formula with the mask of call ``step`` (process 0),
    drawn as the reference does (``rand > 1 - lambda`` is masked) from a
    generator seeded like MGDLoss's stream."""
    s = student
    if isinstance(loss.align, torch.nn.Conv2d):
        s = F.conv2d(student, loss.align.weight, loss.align.bias)
    n, _, h, w = s.shape
    gen = torch.Generator().manual_seed(
        mask_draw_seed(loss.mask_seed, step, 0))
    mat = torch.rand((n, 1, h, w), generator=gen)
    mat = torch.where(mat > 1 - loss.lambda_mgd, 0, 1).to(s.dtype)
    conv1, _, conv2 = loss.generation
    x = F.conv2d(s * mat, conv1.weight, conv1.bias, padding=1)
    x = F.conv2d(torch.relu(x), conv2.weight, conv2.bias, padding=1)
    return loss.alpha_mgd * ((x - teacher)**2).sum() / n


def at_step(loss, fn, step):
    """Run ``fn`` with ``loss``'s mask stream at call ``step``."""

    def run():
        loss.mask_step = step
        return fn()

    return run


@pytest.mark.parametrize('channels', [(4, 4), (3, 4)])
def test_mgd_value_and_grads(channels):
    loss = MGDLoss(*channels, alpha_mgd=0.5).double()
    student, teacher = feats(2, *channels, (9, 11))
    check_value_and_grads(at_step(loss, lambda: loss(student, teacher), 5),
                          lambda: ref_mgd(loss, student, teacher, 5),
                          student, loss.parameters())


def test_mgd_mask_stream_fresh_and_resumable():
    loss = MGDLoss(4, 4).double()
    student, teacher = feats(2, 4, 4, (12, 12))
    rng_state = torch.get_rng_state()
    first, second = loss(student, teacher), loss(student, teacher)
    assert not torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), rng_state)  # global RNG unused
    # a checkpoint's state dict carries the stream's seed and position
    state = loss.state_dict()
    assert state['_extra_state'] == dict(mask_seed=loss.mask_seed,
                                         mask_step=2)
    third = loss(student, teacher)
    resumed = MGDLoss(4, 4, mask_seed=loss.mask_seed + 1).double()
    resumed.load_state_dict(state)
    assert torch.equal(resumed(student, teacher), third)
    # each instance built after the same torch.manual_seed has its own
    # stream (e.g. one per FPN level), reproducibly
    torch.manual_seed(3)
    seeds = [MGDLoss(4, 4).mask_seed for _ in range(2)]
    torch.manual_seed(3)
    assert [MGDLoss(4, 4).mask_seed for _ in range(2)] == seeds
    assert seeds[0] != seeds[1]


def test_mgd_mask_differs_between_processes(monkeypatch):
    import mmkd_plugin.models.losses.mgd_loss as mgd_module
    loss = MGDLoss(4, 4, mask_seed=0)
    feat = torch.zeros(2, 4, 16, 16)
    masks = []
    for rank in (0, 1):
        monkeypatch.setattr(mgd_module, 'get_rank', lambda: rank)
        loss.mask_step = 0
        masks.append(loss.next_mask(feat))
    assert not torch.equal(*masks)


def test_mgd_mask_rate():
    loss = MGDLoss(1, 1, lambda_mgd=0.65, mask_seed=0)
    loss.generation = torch.nn.Identity()
    student = torch.ones(4, 1, 64, 64)
    kept = loss(student, torch.zeros_like(student)) / loss.alpha_mgd * 4
    assert abs(kept.item() / student.numel() - 0.35) < 0.02


# ------------------------------------------------------------ PKD tests
def ref_pkd_norm(x, unbiased=True):
    """Per channel over (N, H, W): (x - mean) / (std + 1e-6), with the
    sample (Bessel-corrected, the reference's ``Tensor.std``) or the
    population standard deviation."""
    out = torch.empty_like(x)
    for c in range(x.shape[1]):
        vals = x[:, c]
        count = vals.numel()
        mean = vals.sum() / count
        dof = count - 1 if unbiased else count
        std = torch.sqrt(((vals - mean)**2).sum() / dof)
        out[:, c] = (vals - mean) / (std + 1e-6)
    return out


def ref_pkd(student, teacher, weight, resize_stu, unbiased=True):
    if student.shape[2:] != teacher.shape[2:]:
        if resize_stu:
            student = F.interpolate(student, teacher.shape[2:],
                                    mode='bilinear', align_corners=False)
        else:
            teacher = F.interpolate(teacher, student.shape[2:],
                                    mode='bilinear', align_corners=False)
    diff = ref_pkd_norm(student, unbiased) - ref_pkd_norm(teacher, unbiased)
    return weight * (diff**2).sum() / diff.numel() / 2


@pytest.mark.parametrize('s_hw,t_hw,resize_stu', [
    ((10, 12), (10, 12), True),
    ((8, 9), (12, 13), True),
    ((8, 9), (12, 13), False),
])
def test_pkd_value_and_grads(s_hw, t_hw, resize_stu):
    loss = PKDLoss(loss_weight=6.0, resize_stu=resize_stu)
    gen = torch.Generator().manual_seed(3)
    student = (torch.randn(2, 5, *s_hw, generator=gen, dtype=torch.float64)
               * 2 + 1).requires_grad_()
    teacher = torch.randn(2, 5, *t_hw, generator=gen, dtype=torch.float64)
    check_value_and_grads(lambda: loss(student, teacher),
                          lambda: ref_pkd(student, teacher, 6.0, resize_stu),
                          student, [])


@pytest.mark.parametrize('unbiased', [True, False])
def test_pkd_sample_std_on_small_maps(unbiased):
    """N*H*W = 6: the sample std is sqrt(6 / 5) times the population one,
    so only the right one matches (the default is the reference's sample
    std)."""
    kwargs = {} if unbiased else dict(std_unbiased=False)
    loss = PKDLoss(loss_weight=10.0, **kwargs)
    gen = torch.Generator().manual_seed(5)
    student = torch.randn(1, 4, 2, 3, generator=gen,
                          dtype=torch.float64).requires_grad_()
    teacher = torch.randn(1, 4, 2, 3, generator=gen, dtype=torch.float64)
    check_value_and_grads(
        lambda: loss(student, teacher),
        lambda: ref_pkd(student, teacher, 10.0, True, unbiased), student, [])
    other = ref_pkd(student, teacher, 10.0, True, not unbiased)
    assert not torch.allclose(loss(student, teacher), other, rtol=1e-2)


def test_pkd_single_value_per_channel_is_finite():
    """One value per channel (N*H*W = 1) standardises to 0 whichever std:
    the loss is 0, not the NaN of an undefined sample std."""
    student = torch.randn(1, 4, 1, 1, dtype=torch.float64,
                          requires_grad=True)
    value = PKDLoss()(student, torch.randn(1, 4, 1, 1, dtype=torch.float64))
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(student.grad).all()


def test_pkd_channel_mismatch_and_flag():
    assert PKDLoss.allows_spatial_mismatch is True
    assert not getattr(FGDLoss, 'allows_spatial_mismatch', False)
    assert not getattr(MGDLoss, 'allows_spatial_mismatch', False)
    assert not getattr(FitNetLoss, 'allows_spatial_mismatch', False)
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 6, 8, 8)
    with pytest.raises(ValueError) as err:
        PKDLoss()(s, t)
    assert '(2, 4, 8, 8)' in str(err.value)
    assert '(2, 6, 8, 8)' in str(err.value)


# --------------------------------------------------------- FitNet tests
@pytest.mark.parametrize('channels', [(5, 5), (3, 5)])
def test_fitnet_value_and_grads(channels):
    loss = FitNetLoss(*channels, loss_weight=2.0).double()
    student, teacher = feats(2, *channels, (9, 10))

    def ref():
        s = student
        if isinstance(loss.align, torch.nn.Conv2d):
            s = F.conv2d(student, loss.align.weight, loss.align.bias)
        return 2.0 * ((s - teacher)**2).sum() / teacher.numel()

    check_value_and_grads(lambda: loss(student, teacher), ref, student,
                          loss.parameters())


# ------------------------------------------------------------ CWD tests
def ref_cwd(loss, student, teacher):
    """methods.md: p_c = softmax over H*W of x_c / tau for every (n, c);
    loss_weight * tau^2 * sum p_T (log p_T - log p_S) / (N * C)."""
    s = student
    if isinstance(loss.align, torch.nn.Conv2d):
        s = F.conv2d(student, loss.align.weight, loss.align.bias)
    n, c = teacher.shape[:2]
    tau = loss.tau
    total = student.new_zeros(())
    for i in range(n):
        for k in range(c):
            s_exp = torch.exp(s[i, k].reshape(-1) / tau)
            t_exp = torch.exp(teacher[i, k].reshape(-1) / tau)
            p_s = s_exp / s_exp.sum()
            p_t = t_exp / t_exp.sum()
            total = total + (p_t * (torch.log(p_t) - torch.log(p_s))).sum()
    return loss.loss_weight * tau**2 * total / (n * c)


@pytest.mark.parametrize('channels, tau, weight', [
    ((6, 6), 1.0, 10.0),
    ((4, 6), 2.5, 5.0),
])
def test_cwd_value_and_grads(channels, tau, weight):
    kwargs = dict(student_channels=channels[0],
                  teacher_channels=channels[1]) if channels[0] != channels[
                      1] else {}
    loss = CWDLoss(tau=tau, loss_weight=weight, **kwargs).double()
    randomize(loss, seed=4)
    student, teacher = feats(2, *channels, (5, 7), seed=6)
    student.data.mul_(3)  # sharper distributions: KL well away from 0
    value = check_value_and_grads(lambda: loss(student, teacher),
                                  lambda: ref_cwd(loss, student, teacher),
                                  student, loss.parameters())
    assert value.dtype == torch.float64 and value > 0.1
    # the teacher is a target only
    teacher.requires_grad_()
    assert torch.autograd.grad(loss(student, teacher), teacher,
                               allow_unused=True)[0] is None


# ------------------------------------------------------ shared behaviour
def all_losses():
    return {
        'FGD': FGDLoss(6, 8),
        'MGD': MGDLoss(6, 8),
        'PKD': PKDLoss(),
        'FitNet': FitNetLoss(6, 8),
    }


@pytest.mark.parametrize('name', ['FGD', 'MGD', 'PKD', 'FitNet'])
def test_finite_under_bf16_autocast(name):
    loss = all_losses()[name]
    if name == 'FGD':
        randomize(loss)
    c_s = 8 if name == 'PKD' else 6
    student, teacher = feats(2, c_s, 8, FEAT_HW, dtype=torch.float32)
    samples = build_samples(PADDED_SAMPLES)
    torch.manual_seed(0)
    fp32 = loss(student, teacher, samples)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        torch.manual_seed(0)
        if name == 'MGD':  # the same mask as for fp32
            loss.mask_step = 0
        value = loss(student, teacher, samples)
        value_bf16_in = loss(student.bfloat16(), teacher.bfloat16(),
                             samples)
    for v in (value, value_bf16_in):
        assert v.dim() == 0 and torch.isfinite(v)
    value.backward()
    assert torch.isfinite(student.grad).all()
    # every loss computes in float32 regardless of autocast
    assert_close(value, fp32, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize('name', ['FGD', 'MGD', 'PKD', 'FitNet'])
def test_bad_shapes_raise(name):
    loss = all_losses()[name]
    c_s = 8 if name == 'PKD' else 6
    samples = build_samples(PADDED_SAMPLES)
    bad_pairs = [(torch.randn(2, c_s, 8, 13), torch.randn(3, 8, 8, 13)),
                 (torch.randn(2, c_s, 8, 13), torch.randn(8, 8, 13))]
    if name != 'PKD':
        bad_pairs.append((torch.randn(2, c_s, 8, 13),
                          torch.randn(2, 8, 7, 13)))
    for student, teacher in bad_pairs:
        with pytest.raises(ValueError) as err:
            loss(student, teacher, samples)
        msg = str(err.value)
        assert str(tuple(teacher.shape)) in msg, msg
        # the student shape (after the 6 -> 8 channel align) is named too
        assert '(2, 8, 8, 13)' in msg, msg


def test_channel_mismatch_without_adapter_raises():
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 6, 8, 8)
    with pytest.raises(ValueError) as err:
        FitNetLoss()(s, t)
    assert '(2, 4, 8, 8)' in str(err.value)
    assert '(2, 6, 8, 8)' in str(err.value)


FEATURE_LOSSES = {
    'CWD': lambda: CWDLoss(6, 8, tau=2.0),
    'FGD': lambda: FGDLoss(6, 8, alpha_fgd=1.0, beta_fgd=0.5,
                           gamma_fgd=0.3, lambda_fgd=0.2),
    'MGD': lambda: MGDLoss(6, 8, alpha_mgd=0.5),
    'PKD': lambda: PKDLoss(loss_weight=6.0),
    'FitNet': lambda: FitNetLoss(6, 8),
}


@pytest.mark.parametrize('name', sorted(FEATURE_LOSSES))
def test_computes_in_float32_under_bf16_autocast(name):
    """Inside CPU bfloat16 autocast, with bfloat16 inputs, every feature
    loss returns the float32 value of the same inputs upcast (the align
    conv included), computed outside autocast."""
    loss = FEATURE_LOSSES[name]()
    randomize(loss, seed=2)
    c_s = 8 if name == 'PKD' else 6
    gen = torch.Generator().manual_seed(9)
    student = torch.randn(2, c_s, *FEAT_HW, generator=gen).bfloat16()
    teacher = torch.randn(2, 8, *FEAT_HW, generator=gen).bfloat16()
    samples = build_samples(PADDED_SAMPLES)
    start_step = getattr(loss, 'mask_step', None)  # MGD's mask stream
    expected = loss(student.float(), teacher.float(), samples)
    if start_step is not None:
        loss.mask_step = start_step  # the same mask again
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(student, teacher, samples)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=0)
