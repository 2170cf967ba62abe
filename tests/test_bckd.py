# Copyright (c) mmkd_plugin contributors.
"""BCKD: the GIoU KD loss, the BCKD GFL head's terms, their composition
with LD, and build-time checks.

The references below are written from the formulas in
shared/reference/methods.md (section BCKD) in float64 with explicit loops,
sigmoid, softmax and box arithmetic; they share no code with the library.
"""
import math
from unittest import mock

import pytest
import torch
from mmdet.registry import MODELS

from mmkd_plugin.models.losses import GIoUKDLoss
from mmkd_plugin.models.losses.giou_kd_loss import aligned_giou
from .conftest import load_offline_config, make_batch
from .test_empty_batches import BATCHES, step

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


def test_aligned_giou_equals_mmdet_bbox_overlaps():
    """Our GIoU (written to avoid mmdet's host copy of eps) has mmdet's
    values and gradients, on overlapping, disjoint and zero-area boxes
    (where eps floors the union and the enclosing area)."""
    from mmdet.structures.bbox import bbox_overlaps
    gen = torch.Generator().manual_seed(5)
    boxes = random_boxes(64, gen).requires_grad_()
    other = random_boxes(64, gen)
    with torch.no_grad():
        other[:8] = other[:8] + 40  # disjoint
        other[8:12, 2:] = other[8:12, :2]  # zero area
        boxes[12:16, 2:] = boxes[12:16, :2]
        other[12:16] = boxes[12:16]  # both the same point: eps matters
    for eps in (1e-6, 0.5):
        ours = aligned_giou(boxes, other, eps)
        ref = bbox_overlaps(boxes, other, mode='giou', is_aligned=True,
                            eps=eps)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
        grad, = torch.autograd.grad(ours.sum(), boxes)
        ref_grad, = torch.autograd.grad(ref.sum(), boxes)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
    assert aligned_giou(boxes, other, 0.5)[12:16].eq(0).all()


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


# --------------------------------------------------------------- head terms
NUM_CLS = 5
REG_MAX = 3
LEVEL_HW = [(6, 5), (3, 3), (2, 2)]


def tiny_bckd_head(**kwargs):
    """A BCKDGFLHead on 3 levels, strides 8 / 16 / 32, one anchor per cell
    centred on the cell's corner (mmdet's ATSS anchors)."""
    return MODELS.build(
        dict(type='BCKDGFLHead',
             num_classes=NUM_CLS,
             in_channels=4,
             feat_channels=4,
             stacked_convs=1,
             reg_max=REG_MAX,
             norm_cfg=dict(type='GN', num_groups=2, requires_grad=True),
             anchor_generator=dict(type='AnchorGenerator',
                                   ratios=[1.0],
                                   octave_base_scale=8,
                                   scales_per_octave=1,
                                   strides=[8, 16, 32]),
             **kwargs)).double()


def head_outputs(seed, num_images=2):
    """Per-level maps, labels and label weights: level 0 has positives in
    both images, level 1 one, level 2 none (and some ignored locations)."""
    gen = torch.Generator().manual_seed(seed)

    def maps(channels, scale=3.0):
        return [
            torch.randn(num_images, channels, h, w, generator=gen, dtype=DTYPE)
            * scale for h, w in LEVEL_HW
        ]

    s_cls = [m.requires_grad_() for m in maps(NUM_CLS)]
    s_reg = [m.requires_grad_() for m in maps(4 * (REG_MAX + 1), 1.5)]
    t_cls, t_reg = maps(NUM_CLS), maps(4 * (REG_MAX + 1), 1.5)
    labels, label_weights = [], []
    for level, (h, w) in enumerate(LEVEL_HW):
        lab = torch.full((num_images, h * w), NUM_CLS, dtype=torch.long)
        # Distinct weights, so that a location paired with another
        # location's weight changes the value.
        lw = 0.5 + torch.rand(num_images, h * w, generator=gen, dtype=DTYPE)
        if level == 0:
            lab[0, [1, 4, 7, 20]] = torch.tensor([0, 3, 3, 1])
            lab[1, [0, 29]] = torch.tensor([4, 2])
            lw[0, [2, 11]] = 0
        elif level == 1:
            lab[1, 5] = 2
        else:
            lw[1, 3] = 0
        labels.append(lab)
        label_weights.append(lw)
    return s_cls, s_reg, t_cls, t_reg, labels, label_weights


def ref_bckd(s_cls,
             s_reg,
             t_cls,
             t_reg,
             labels,
             label_weights,
             skip_levels,
             cls_weight=1.0,
             box_weight=4.0):
    """Both BCKD terms by loops over levels, images and locations."""
    num_pos = sum(int(((lab >= 0) & (lab < NUM_CLS)).sum()) for lab in labels)
    num_pos = max(num_pos, 1)
    cls_total = box_total = torch.zeros((), dtype=DTYPE)
    for level, (h, w) in enumerate(LEVEL_HW):
        has_pos = bool(
            ((labels[level] >= 0) & (labels[level] < NUM_CLS)).any())
        if skip_levels and not has_pos:
            continue
        for i in range(s_cls[level].shape[0]):
            for row in range(h):
                for col in range(w):
                    lw = label_weights[level][i, row * w + col]
                    s = s_cls[level][i, :, row, col]
                    t = t_cls[level][i, :, row, col]
                    cls_total = cls_total + lw * ref_bce_focal(s, t)
                    gap = (torch.sigmoid(t) -
                           torch.sigmoid(s.detach())).abs().max()
                    b_s = ref_decode(s_reg[level][i, :, row, col], float(col),
                                     float(row))
                    b_t = ref_decode(t_reg[level][i, :, row, col], float(col),
                                     float(row))
                    box_total = box_total + lw * gap * (1 - ref_giou(b_s, b_t))
    return (cls_weight * cls_total / num_pos, box_weight * box_total / num_pos)


@pytest.mark.parametrize('skip_levels', [True, False])
def test_bckd_head_terms_match_reference(skip_levels):
    """loss_bckd_cls and loss_bckd_bbox (values and gradients) equal the
    loop reference, with and without the authors' level quirk; the quirk
    matters here (level 2 has no positives) and, when on, nothing reaches
    level 2."""
    head = tiny_bckd_head(bckd_skip_levels_without_pos=skip_levels)
    s_cls, s_reg, t_cls, t_reg, labels, lws = head_outputs(seed=3)
    ours = head._distill_losses(
        s_cls, s_reg, t_cls, t_reg,
        dict(labels=labels, label_weights=lws))
    assert sorted(ours) == ['loss_bckd_bbox', 'loss_bckd_cls']
    ref_cls, ref_box = ref_bckd(s_cls, s_reg, t_cls, t_reg, labels, lws,
                                skip_levels)
    inputs = s_cls + s_reg
    for key, ref in (('loss_bckd_cls', ref_cls), ('loss_bckd_bbox', ref_box)):
        torch.testing.assert_close(ours[key], ref, rtol=1e-10, atol=0)
        grads = torch.autograd.grad(ours[key],
                                    inputs,
                                    retain_graph=True,
                                    allow_unused=True)
        ref_grads = torch.autograd.grad(ref,
                                        inputs,
                                        retain_graph=True,
                                        allow_unused=True)
        for grad, ref_grad in zip(grads, ref_grads):
            grad = torch.zeros_like(inputs[0]) if grad is None else grad
            ref_grad = torch.zeros_like(grad) if ref_grad is None \
                else ref_grad
            torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-13)
    level2 = torch.autograd.grad(ours['loss_bckd_cls'] +
                                 ours['loss_bckd_bbox'], [s_cls[2], s_reg[2]],
                                 allow_unused=True)
    reached = any(g is not None and g.abs().sum() > 0 for g in level2)
    assert reached != skip_levels
    other_cls, other_box = ref_bckd(s_cls, s_reg, t_cls, t_reg, labels, lws,
                                    not skip_levels)
    assert not torch.allclose(ours['loss_bckd_cls'], other_cls, rtol=1e-3)
    assert not torch.allclose(ours['loss_bckd_bbox'], other_box, rtol=1e-3)


def test_bckd_box_term_is_weighted_by_the_score_gap():
    """Equal class scores at every location (gap 0) give a zero box term
    even though the boxes differ; the class term is zero too."""
    head = tiny_bckd_head()
    s_cls, s_reg, _, t_reg, labels, lws = head_outputs(seed=4)
    t_cls = [m.detach().clone() for m in s_cls]
    ours = head._distill_losses(
        s_cls, s_reg, t_cls, t_reg,
        dict(labels=labels, label_weights=lws))
    assert ours['loss_bckd_bbox'].item() == 0.0
    assert ours['loss_bckd_cls'].item() == 0.0
    # and with different scores the same boxes give a positive term
    t_cls = [m.detach() + 1.0 for m in s_cls]
    ours = head._distill_losses(
        s_cls, s_reg, t_cls, t_reg,
        dict(labels=labels, label_weights=lws))
    assert ours['loss_bckd_bbox'] > 0


def test_bckd_head_terms_in_float32_under_bf16_autocast():
    """bfloat16 head outputs inside CPU autocast give float32 terms equal to
    those of the same outputs upcast, computed outside autocast."""
    head = tiny_bckd_head().float()
    maps = [[m.detach().bfloat16() for m in part]
            for part in head_outputs(seed=5)[:4]]
    _, _, _, _, labels, lws = head_outputs(seed=5)
    targets = dict(labels=labels,
                   label_weights=[lw.float() for lw in lws])
    expected = head._distill_losses(
        *[[m.float() for m in part] for part in maps], targets)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours = head._distill_losses(*maps, targets)
    for key, value in ours.items():
        assert value.dtype == torch.float32, key
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=0)


def test_bckd_head_options_checked():
    with pytest.raises(ValueError, match='every distillation term'):
        tiny_bckd_head(loss_bckd_cls=None, loss_bckd_bbox=None)
    head = tiny_bckd_head(loss_bckd_bbox=None)
    assert head.distill_loss_keys() == ['loss_bckd_cls']
    head = tiny_bckd_head(loss_ld=dict(type='LDLoss'))
    assert head.distill_loss_keys() == [
        'loss_ld', 'loss_bckd_cls', 'loss_bckd_bbox'
    ]


# --------------------------------------------------------------- models
DIGITS = 'bckd_gfl_r18-w32_r18-w8_digits.py'


def build(cfg_name, **head):
    cfg = load_offline_config(cfg_name)
    cfg.model.student.bbox_head.update(head)
    return MODELS.build(cfg.model)


def train_losses(model, seed=0):
    model.train()
    inputs, samples = make_batch(num_images=2,
                                 size=128,
                                 num_classes=10,
                                 seed=seed)
    return model.loss(inputs, samples)


def test_bckd_composes_with_ld_in_one_head():
    """One head with the digits LD setting (main LD + VLR + classification
    KD) and BCKD: every term is logged and equals its value in the LD-only
    and the BCKD-only configs (same weights, same batch)."""
    combined = build('ld_gfl_r18-w32_r18-w8_digits.py', type='BCKDGFLHead')
    ld_only = build('ld_gfl_r18-w32_r18-w8_digits.py')
    bckd_only = build(DIGITS)
    for other in (ld_only, bckd_only):
        other.student.load_state_dict(combined.student.state_dict())
        other.teacher.load_state_dict(combined.teacher.state_dict())
    with torch.no_grad():
        losses = train_losses(combined)
        alone = {**train_losses(ld_only), **train_losses(bckd_only)}
    keys = [
        'loss_ld', 'loss_ld_vlr', 'loss_kd_cls', 'loss_bckd_cls',
        'loss_bckd_bbox'
    ]
    assert combined.student.bbox_head.distill_loss_keys() == keys
    for key in keys:
        assert torch.isfinite(losses[key]) and losses[key] > 0, key
        torch.testing.assert_close(losses[key], alone[key], rtol=1e-6, atol=0)
    for key in ('loss_cls', 'loss_bbox', 'loss_dfl'):
        torch.testing.assert_close(sum(losses[key]), sum(alone[key]))


def test_bckd_generates_no_anchors_of_its_own():
    """BCKD decodes its boxes around the origin (GIoU is translation
    invariant): one grid_priors pass per step, GFL's own, not two (on a GPU
    each pass copies the base anchors from the host, a sync per level)."""
    model = build(DIGITS)
    generator = model.student.bbox_head.prior_generator
    with mock.patch.object(generator, 'grid_priors',
                           wraps=generator.grid_priors) as grid_priors:
        losses = train_losses(model)
    assert grid_priors.call_count == 1
    assert losses['loss_bckd_bbox'] > 0


# bckd_gfl_r101_r18.py (which inherits bckd_gfl_r101_r50.py's head) takes
# its training step in tests/test_configs.py.
@pytest.mark.parametrize('cfg_name', ['bckd_gfl_r101_r50.py', DIGITS])
def test_bckd_config_train_step(cfg_name):
    """Each config builds offline and takes a training step: both BCKD
    terms logged, finite, positive, reaching the student's head (the
    regression branch only through the box term), never the teacher."""
    model = build(cfg_name)
    head = model.student.bbox_head
    assert head.bckd_skip_levels_without_pos
    assert (head.loss_bckd_cls.beta, head.loss_bckd_cls.loss_weight) == (1, 1)
    assert (head.loss_bckd_bbox.eps, head.loss_bckd_bbox.loss_weight) == \
        (1e-6, 4)
    model.train()
    inputs, samples = make_batch(num_images=1,
                                 size=128,
                                 num_classes=head.num_classes)
    losses = model.loss(inputs, samples)
    for key in ('loss_bckd_cls', 'loss_bckd_bbox'):
        assert torch.isfinite(losses[key]) and losses[key] > 0, key
    grad, = torch.autograd.grad(losses['loss_bckd_bbox'],
                                head.gfl_reg.weight,
                                retain_graph=True)
    assert grad.abs().sum() > 0
    grad, = torch.autograd.grad(losses['loss_bckd_cls'],
                                head.gfl_cls.weight,
                                retain_graph=True)
    assert grad.abs().sum() > 0
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())


@pytest.fixture(scope='module')
def digits_models():
    """The digits BCKD detector with the level quirk on (True) and off."""
    return {
        skip: build(DIGITS, bckd_skip_levels_without_pos=skip)
        for skip in (True, False)
    }


@pytest.mark.parametrize('batch', sorted(BATCHES))
def test_bckd_detector_on_batches_without_positives(digits_models, batch):
    """Batches without boxes, with crowd boxes only, without any student
    positive, or with one empty image: finite losses and gradients; with
    no positive anywhere every level is skipped (the authors' quirk), so
    both BCKD terms are exactly 0; with the quirk off they are not."""
    for skip, model in digits_models.items():
        model.train()
        losses, _, _ = step(model, BATCHES[batch])
        for key in ('loss_bckd_cls', 'loss_bckd_bbox'):
            if skip and batch != 'one_empty_image':
                assert losses[key].item() == 0.0, (key, losses[key])
            else:
                assert losses[key] > 0, key


# --------------------------------------------------------------- linking
SMALL_BACKBONE = dict(depth=18, init_cfg=None)
SMALL_NECK = dict(in_channels=[64, 128, 256, 512])


def small_gfl(**head):
    return dict(cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
                backbone=SMALL_BACKBONE,
                neck=SMALL_NECK,
                bbox_head=head)


@pytest.mark.parametrize('teacher, messages', [
    (dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
          backbone=SMALL_BACKBONE),
     ['BCKDGFLHead needs', 'GFL-style', 'RetinaHead']),
    (small_gfl(reg_max=8), ['BCKDGFLHead: reg_max', 'student 16', 'teacher 8'
                            ]),
    (small_gfl(anchor_generator=dict(strides=[4, 8, 16, 32, 64])),
     ['BCKDGFLHead: the teacher\'s anchors', 'teacher [(4, 4)']),
    (small_gfl(num_classes=20),
     ['BCKDGFLHead', 'student has 80 class channels', 'teacher 20']),
])
def test_bckd_head_refuses_incompatible_teacher(teacher, messages):
    cfg = load_offline_config('bckd_gfl_r101_r18.py')
    cfg.model.teacher = teacher
    with pytest.raises(ValueError) as err:
        MODELS.build(cfg.model)
    for message in messages:
        assert message in str(err.value), str(err.value)


def test_reference_decode_matches_hand_value():
    """The reference's decoding itself: uniform logits over 4 bins give the
    mean bin 1.5 on every side."""
    box = ref_decode(torch.zeros(16, dtype=DTYPE), 2.0, 3.0)
    torch.testing.assert_close(box,
                               torch.tensor([0.5, 1.5, 3.5, 4.5], dtype=DTYPE))
    assert math.isclose(float(ref_giou(box, box)), 1.0)
