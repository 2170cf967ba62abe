# Copyright (c) mmkd_plugin contributors.
"""CrossKD: align_scale and the cross-head losses against an independent
float64 implementation, the gradient path, build-time checks and the
configs."""
import copy
import types

from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from mmkd_plugin.models.utils import align_scale, resolve_model_config

from .conftest import load_offline_config, make_batch

NUM_CLS = 3
STRIDES = [8, 16, 32]
FAMILIES = {
    'gfl': ('mmdet::gfl/gfl_r50_fpn_1x_coco.py', 'CrossKDGFLHead'),
    'atss': ('mmdet::atss/atss_r50_fpn_1x_coco.py', 'CrossKDATSSHead'),
    'fcos': ('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
             'CrossKDFCOSHead'),
    'retina': ('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
               'CrossKDRetinaHead'),
}
PREDICTORS = {  # cls, reg, centerness, reg scaled
    'gfl': ('gfl_cls', 'gfl_reg', None, True),
    'atss': ('atss_cls', 'atss_reg', 'atss_centerness', True),
    'fcos': ('conv_cls', 'conv_reg', 'conv_centerness', True),
    'retina': ('retina_cls', 'retina_reg', None, False),
}
IDX = {'gfl': 3, 'atss': 3, 'fcos': 2, 'retina': 3}


# ---------------------------------------------------------- align_scale
def ref_align(s, t, eps=1e-6):
    """Per channel, statistics written out: sum / n and the unbiased
    variance sum((x - mean)^2) / (n - 1)."""
    out = torch.empty_like(s)
    for c in range(s.shape[1]):
        sc, tc = s[:, c], t[:, c]
        s_mean, t_mean = sc.sum() / sc.numel(), tc.sum() / tc.numel()
        s_std = (((sc - s_mean)**2).sum() / (sc.numel() - 1)).sqrt()
        t_std = (((tc - t_mean)**2).sum() / (tc.numel() - 1)).sqrt()
        out[:, c] = (sc - s_mean) / (s_std + eps) * t_std + t_mean
    return out


def test_align_scale_matches_reference():
    gen = torch.Generator().manual_seed(0)
    s = (torch.randn(2, 5, 4, 3, generator=gen, dtype=torch.float64) * 3 +
         1).requires_grad_()
    t = torch.randn(3, 5, 6, 2, generator=gen, dtype=torch.float64) * 0.5 - 2
    ours, ref = align_scale(s, t), ref_align(s, t)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    weights = torch.randn(ours.shape, generator=gen, dtype=torch.float64)
    grad_ours, = torch.autograd.grad((ours * weights).sum(), s)
    grad_ref, = torch.autograd.grad((ref * weights).sum(), s)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-10, atol=1e-12)
    # The teacher's statistics, channel by channel.
    t_std = t.std(dim=(0, 2, 3))
    s_std = s.detach().std(dim=(0, 2, 3))
    torch.testing.assert_close(ours.mean(dim=(0, 2, 3)), t.mean(dim=(0, 2,
                                                                      3)))
    torch.testing.assert_close(
        ours.std(dim=(0, 2, 3)), t_std * s_std / (s_std + 1e-6))
    with pytest.raises(ValueError, match='same C'):
        align_scale(s, t[:, :4])


# ---------------------------------------------------------- tiny heads
def head_cfg(family, width=8, stacked_convs=4, **overrides):
    """A tiny head of ``family``: 3 levels, ``width`` channels, GN with 2
    groups, the mmdet config's train_cfg."""
    model = resolve_model_config(FAMILIES[family][0], 'test')
    cfg = copy.deepcopy(model.bbox_head).to_dict()
    cfg.update(num_classes=NUM_CLS, in_channels=width, feat_channels=width,
               stacked_convs=stacked_convs,
               train_cfg=copy.deepcopy(model.get('train_cfg')),
               test_cfg=copy.deepcopy(model.test_cfg))
    if family != 'retina':
        cfg['norm_cfg'] = dict(type='GN', num_groups=2, requires_grad=True)
    if family == 'fcos':
        cfg.update(strides=STRIDES,
                   regress_ranges=((-1, 32), (32, 64), (64, 1e8)))
    else:
        cfg['anchor_generator'] = dict(cfg['anchor_generator'],
                                       strides=STRIDES)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = dict(cfg[key], **value)
        else:
            cfg[key] = value
    return cfg


def build_pair(family, s_width=8, t_width=8, teacher=None, **student):
    """A CrossKD student head linked to a plain teacher head."""
    s_head = MODELS.build(
        head_cfg(family, s_width, type=FAMILIES[family][1], **student))
    t_head = MODELS.build(teacher or head_cfg(family, t_width))
    t_head.requires_grad_(False)
    t_head.eval()
    s_head.link_teacher(types.SimpleNamespace(bbox_head=t_head))
    return s_head, t_head


def random_inputs(width_s, width_t, seed=0, size=64):
    gen = torch.Generator().manual_seed(seed)
    feats = tuple(
        torch.randn(2, width_s, size // s, size // s, generator=gen,
                    dtype=torch.float64).requires_grad_() for s in STRIDES)
    t_feats = tuple(
        torch.randn(2, width_t, size // s, size // s, generator=gen,
                    dtype=torch.float64) * 2 + 0.5 for s in STRIDES)
    _, samples = make_batch(2, size, num_classes=NUM_CLS, seed=seed)
    return feats, t_feats, samples


def perturb_(module, seed):
    """Give every parameter random values, so no term is trivially 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)


# ---------------------------------------------- independent reference
def ref_conv_module(m, x, act=True):
    y = F.conv2d(x, m.conv.weight, m.conv.bias, padding=1)
    if m.with_norm:
        y = F.group_norm(y, m.norm.num_groups, m.norm.weight, m.norm.bias,
                         m.norm.eps)
    return torch.clamp(y, min=0) if act else y


def ref_predict(family, head, cls_feat, reg_feat, level):
    cls_name, reg_name, ctr_name, scaled = PREDICTORS[family]

    def conv(name, x):
        layer = getattr(head, name)
        return F.conv2d(x, layer.weight, layer.bias, padding=1)

    reg = conv(reg_name, reg_feat)
    if scaled:
        reg = reg * head.scales[level].scale
    if family == 'fcos':
        reg = reg.clamp(min=0) if head.norm_on_bbox else reg.exp()
    outs = [conv(cls_name, cls_feat), reg]
    if ctr_name:
        on_reg = family == 'atss' or head.centerness_on_reg
        outs.append(conv(ctr_name, reg_feat if on_reg else cls_feat))
    return outs


def ref_head_and_cross(family, s_head, t_head, feats, t_feats, idx):
    """Teacher predictions and cross-head predictions, per level."""
    teacher, cross = [], []
    for level, (x, tx) in enumerate(zip(feats, t_feats)):
        t_towers, x_towers = [], []
        for tower in ('cls_convs', 'reg_convs'):
            s_convs, t_convs = getattr(s_head, tower), getattr(t_head, tower)
            s_hold, t_hold = x, tx
            for i in range(idx):
                s_hold = ref_conv_module(s_convs[i], s_hold,
                                         act=i < idx - 1)
                t_hold = ref_conv_module(t_convs[i], t_hold,
                                         act=i < idx - 1)
            t_feat = t_hold.clamp(min=0) if idx else t_hold
            h = ref_align(s_hold, t_hold)
            h = h.clamp(min=0) if idx else h
            for conv in t_convs[idx:]:
                t_feat = ref_conv_module(conv, t_feat)
                h = ref_conv_module(conv, h)
            t_towers.append(t_feat)
            x_towers.append(h)
        teacher.append(ref_predict(family, t_head, *t_towers, level))
        cross.append(ref_predict(family, t_head, *x_towers, level))
    return teacher, cross


def flat(maps, per_prior):
    return torch.cat([
        m.permute(0, 2, 3, 1).reshape(-1, per_prior) for m in maps])


def ref_qfl(x, t, weight, avg):
    q, p = t.sigmoid(), x.sigmoid()
    bce = -(q * F.logsigmoid(x) + (1 - q) * F.logsigmoid(-x))
    loss = bce * (p - q).abs()
    if weight is not None:
        loss = loss * weight[:, None]
    return loss.sum() / avg


def ref_decode_deltas(anchors, deltas, stds):
    stds = anchors.new_tensor(stds)
    d = deltas * stds
    max_ratio = abs(torch.log(torch.tensor(16 / 1000.0,
                                           dtype=torch.float64)))
    dw, dh = d[:, 2].clamp(-max_ratio, max_ratio), d[:, 3].clamp(
        -max_ratio, max_ratio)
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    px, py = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] +
                                                   anchors[:, 3]) / 2
    gx, gy = px + pw * d[:, 0], py + ph * d[:, 1]
    gw, gh = pw * dw.exp(), ph * dh.exp()
    return torch.stack([gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2],
                       dim=1)


def ref_iou_parts(a, b):
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa
    union = (area(a) + area(b) - inter).clamp(min=1e-6)
    enc = (torch.max(a[:, 2:], b[:, 2:]) -
           torch.min(a[:, :2], b[:, :2])).clamp(min=0).prod(1).clamp(min=1e-6)
    return inter / union, union, enc


def ref_giou_loss(a, b):
    iou, union, enc = ref_iou_parts(a, b)
    return 1 - (iou - (enc - union) / enc)


def mmdet_targets(family, head, feats, samples):
    """The output of the head's get_targets, called as its loss_by_feat
    calls it."""
    gts = [s.gt_instances for s in samples]
    metas = [s.metainfo for s in samples]
    sizes = [f.shape[-2:] for f in feats]
    if family == 'fcos':
        points = head.prior_generator.grid_priors(sizes, dtype=torch.float64,
                                                device='cpu')
        return head.get_targets(points, gts)
    anchors, valid = head.get_anchors(sizes, metas, device='cpu')
    return head.get_targets(anchors, valid, gts, metas)


def ref_targets(family, targets):
    """labels, label_weights (None for FCOS), cls avg_factor."""
    if family == 'fcos':
        labels, bbox_targets = targets
        labels, bbox_targets = torch.cat(labels), torch.cat(bbox_targets)
        pos = labels < NUM_CLS
        lr, tb = bbox_targets[pos][:, [0, 2]], bbox_targets[pos][:, [1, 3]]
        ctr = ((lr.min(1).values / lr.max(1).values) *
               (tb.min(1).values / tb.max(1).values)).sqrt()
        return labels, None, max(ctr.sum(), 1e-6)
    if family != 'retina':
        targets = targets[1:]
    labels = torch.cat([lv.reshape(-1) for lv in targets[0]])
    weights = torch.cat([lv.reshape(-1) for lv in targets[1]])
    return labels, weights, float(targets[4])


def ref_crosskd(family, s_head, t_head, feats, t_feats, targets):
    teacher, cross = ref_head_and_cross(family, s_head, t_head, feats,
                                        t_feats, IDX[family])
    labels, lw, avg = ref_targets(family, targets)
    priors_per_loc = s_head.prior_generator.num_base_priors[0]
    t = [flat([lv[k] for lv in teacher], teacher[0][k].shape[1] //
              priors_per_loc) for k in range(len(teacher[0]))]
    x = [flat([lv[k] for lv in cross], cross[0][k].shape[1] //
              priors_per_loc) for k in range(len(cross[0]))]
    losses = {}
    cls_weight = 0.4 if family == 'fcos' else 1.0
    losses['loss_crosskd_cls'] = cls_weight * ref_qfl(x[0], t[0], lw, avg)
    r = torch.sigmoid(t[0].max(1).values)
    if family == 'gfl':
        r = r * (lw > 0)
        log_pt = F.log_softmax(t[1].reshape(-1, 4, 17), -1)
        log_px = F.log_softmax(x[1].reshape(-1, 4, 17), -1)
        kl = (log_pt.exp() * (log_pt - log_px)).sum(-1)  # (L, 4)
        losses['loss_crosskd_bbox'] = 4.0 * (r[:, None] * kl).sum() / 4 / \
            r.sum()
        return losses
    sizes = [f.shape[-2:] for f in feats]
    priors = torch.cat([
        p.repeat(2, 1) for p in s_head.prior_generator.grid_priors(
            sizes, dtype=torch.float64, device='cpu')])
    if family == 'fcos':
        def boxes(d):
            return torch.cat([priors - d[:, :2], priors + d[:, 2:]], dim=1)
        iou, _, _ = ref_iou_parts(boxes(x[1]), boxes(t[1]))
        losses['loss_crosskd_bbox'] = 0.75 * (
            r * -iou.clamp(min=1e-6).log()).sum() / avg
        return losses
    stds = [0.1, 0.1, 0.2, 0.2] if family == 'atss' else [1.0] * 4
    giou = ref_giou_loss(ref_decode_deltas(priors, x[1], stds),
                         ref_decode_deltas(priors, t[1], stds))
    losses['loss_crosskd_bbox'] = (r * lw * giou).sum() / avg
    if family == 'atss':
        pos = labels < NUM_CLS
        z, q = x[2][pos, 0], t[2][pos, 0].sigmoid()
        losses['loss_crosskd_centerness'] = -(
            q * F.logsigmoid(z) + (1 - q) * F.logsigmoid(-z)).sum() / avg
    return losses


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_crosskd_losses_match_reference(family):
    s_head, t_head = build_pair(family)
    s_head.double().train()
    t_head.double()
    perturb_(s_head, 1)
    perturb_(t_head, 2)
    feats, t_feats, samples = random_inputs(8, 8)
    # mmdet's own GFL loss fails in float64: the KD part alone, with the
    # assignment of the head's get_targets.
    targets = mmdet_targets(family, s_head, feats, samples)
    outs, holds = s_head.forward_holding(feats)
    with s_head.teacher_step(t_feats, None):
        losses = s_head.crosskd_losses(holds, targets, outs[0])
    ref = ref_crosskd(family, s_head, t_head, feats, t_feats, targets)
    assert set(ref) == set(s_head.distill_loss_keys())
    for key, value in ref.items():
        assert value.dtype == torch.float64 and value > 0, key
        # mmdet's IoULoss (FCOS) adds float32 eps to avg_factor; our
        # losses are exact.
        rtol = 1e-6 if (family, key) == ('fcos', 'loss_crosskd_bbox') \
            else 1e-10
        torch.testing.assert_close(losses[key], value, rtol=rtol, atol=0)
        grad_ours = torch.autograd.grad(losses[key], feats,
                                        retain_graph=True)
        grad_ref = torch.autograd.grad(value, feats, retain_graph=True)
        assert sum(g.abs().sum() for g in grad_ref) > 0, key
        for g_o, g_r in zip(grad_ours, grad_ref):
            torch.testing.assert_close(g_o, g_r, rtol=rtol, atol=1e-15)


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_forward_holding_is_forward(family):
    s_head, _ = build_pair(family)
    perturb_(s_head, 3)
    feats, _, _ = random_inputs(8, 8)
    feats = tuple(f.float() for f in feats)
    s_head.train()
    by_hand, holds = s_head.forward_holding(feats)
    for ours, plain in zip(by_hand, s_head(feats)):
        for a, b in zip(ours, plain):
            assert torch.equal(a, b)
    # The hold is the idx-th conv's output before its ReLU.
    idx = IDX[family]
    feat = feats[0]
    for conv in s_head.cls_convs[:idx - 1]:
        feat = conv(feat)
    torch.testing.assert_close(holds[0][0],
                               s_head.cls_convs[idx - 1](feat,
                                                         activate=False))
    assert (holds[0][0] < 0).any()


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_loss_uses_the_heads_own_assignment(family):
    """loss() = detection losses + crosskd_losses on the targets and priors
    of the head's own get_targets call: the priors are generated once per
    step, not again for the KD terms (on a GPU each pass copies the base
    priors from the host, a sync per level)."""
    s_head, t_head = build_pair(family)
    perturb_(s_head, 1)
    perturb_(t_head, 2)
    s_head.train()
    feats, t_feats, samples = random_inputs(8, 8)
    feats = tuple(f.float() for f in feats)
    t_feats = tuple(f.float() for f in t_feats)
    generator = s_head.prior_generator
    with s_head.teacher_step(t_feats, None):
        with mock.patch.object(generator, 'grid_priors',
                               wraps=generator.grid_priors) as grid_priors:
            losses = s_head.loss(feats, samples)
        assert grid_priors.call_count == 1
        outs, holds = s_head.forward_holding(feats)
        kd = s_head.crosskd_losses(
            holds, mmdet_targets(family, s_head, feats, samples), outs[0])
    assert set(kd) == set(s_head.distill_loss_keys())
    assert set(kd) < set(losses)
    for key, value in kd.items():
        assert value > 0
        # (mmdet_targets makes FCOS's points in float64: its avg_factor too)
        torch.testing.assert_close(losses[key], value.float(), rtol=1e-6,
                                   atol=0)


# --------------------------------------------------------------- building
def link_error(family, teacher_cfg, **student):
    with pytest.raises(ValueError) as err:
        build_pair(family, teacher=teacher_cfg, **student)
    return str(err.value)


@pytest.mark.parametrize('family, teacher, messages', [
    ('gfl', dict(anchor_generator=dict(strides=[4, 8, 16])),
     ['strides: student [(8, 8), (16, 16), (32, 32)], teacher [(4, 4)']),
    ('retina', dict(anchor_generator=dict(octave_base_scale=3)),
     ['scales: student [4.0', 'teacher [3.0']),
    ('retina', dict(anchor_generator=dict(ratios=[1.0])),
     ['ratios: student [0.5, 1.0, 2.0], teacher [1.0]']),
    ('fcos', dict(strides=[4, 16, 32]), ['strides: student [(8, 8)']),
    ('atss', dict(num_classes=4),
     ['num_classes: student 3, teacher 4']),
    ('gfl', dict(reg_max=8), ['reg_max: student 16, teacher 8']),
    ('fcos', dict(stacked_convs=3),
     ['stacked_convs: student (4, 4), teacher (3, 3)']),
])
def test_mismatched_heads_are_refused_naming_both(family, teacher, messages):
    message = link_error(family, head_cfg(family, **teacher))
    assert f'student head {FAMILIES[family][1]}, teacher head' in message
    for part in messages:
        assert part in message, message


def test_teacher_of_another_family_is_refused():
    message = link_error('gfl', head_cfg('retina'))
    assert 'student head CrossKDGFLHead, teacher head RetinaHead' in message
    assert 'needs a GFL head' in message


def test_bad_idx_and_centerness_loss_are_refused():
    with pytest.raises(ValueError, match='reused_teacher_head_idx'):
        build_pair('gfl', reused_teacher_head_idx=5)
    with pytest.raises(ValueError, match='ATSS heads'):
        build_pair('retina', loss_crosskd_centerness=dict(
            type='QualityFocalKDLoss', beta=0.0))


def test_other_head_width_gets_a_student_to_teacher_adapter():
    s_head, t_head = build_pair('gfl', s_width=8, t_width=16)
    for tower in ('cls', 'reg'):
        assert s_head.crosskd_adapters[tower].weight.shape == (16, 8, 1, 1)
    perturb_(s_head, 1)
    perturb_(t_head, 2)
    s_head.train()
    feats, t_feats, samples = random_inputs(8, 16)
    feats = tuple(f.float() for f in feats)
    t_feats = tuple(f.float() for f in t_feats)
    with s_head.teacher_step(t_feats, None):
        losses = s_head.loss(feats, samples)
    kd = losses['loss_crosskd_cls'] + losses['loss_crosskd_bbox']
    assert torch.isfinite(kd)
    grads = torch.autograd.grad(
        kd, list(s_head.crosskd_adapters.parameters()) + list(feats))
    assert all(g.abs().sum() > 0 for g in grads)
    # Same widths: no adapter, the plain head's parameters.
    same, _ = build_pair('gfl')
    plain = MODELS.build(head_cfg('gfl'))
    assert set(same.state_dict()) == set(plain.state_dict())


# ---------------------------------------------------------- gradient path
SMALL_BACKBONE = dict(depth=18, init_cfg=None)


def tiny_detector_cfg(family, width=32, head_type=None):
    path = FAMILIES[family][0]
    backbone = dict(SMALL_BACKBONE)
    if family == 'fcos':  # the caffe config's style; weights are random
        backbone['style'] = 'pytorch'
    head = dict(in_channels=width, feat_channels=width, num_classes=NUM_CLS)
    if head_type:
        head['type'] = head_type
    return dict(cfg_path=path, backbone=backbone, bbox_head=head,
                neck=dict(in_channels=[64, 128, 256, 512],
                          out_channels=width))


def tiny_distiller(family):
    return MODELS.build(dict(
        type='DistillationDetector',
        student=tiny_detector_cfg(family, head_type=FAMILIES[family][1]),
        teacher=tiny_detector_cfg(family), allow_random_teacher=True))


def split_head_params(head, idx):
    """(names before the hold, names after it) of the student's head."""
    before, after = [], []
    for name, _ in head.named_parameters():
        tower = name.split('.')[0]
        if tower in ('cls_convs', 'reg_convs'):
            (before if int(name.split('.')[1]) < idx else after).append(name)
        else:
            after.append(name)  # predictors, scales
    return before, after


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_crosskd_gradient_path(family, one_thread):
    model = tiny_distiller(family)
    model.init_weights()
    model.train()
    student, head = model.student, model.student.bbox_head
    teacher_before = {k: v.clone() for k, v in
                      model.teacher.state_dict().items()}
    # 3 images: on the 1x1 coarsest level, 2 values per channel would
    # standardise to +-1/sqrt(2) whatever they are (no gradient).
    inputs, samples = make_batch(3, 96, num_classes=NUM_CLS)
    losses = model.loss(inputs, samples)
    kd_keys = head.distill_loss_keys()
    kd = sum(losses[key] for key in kd_keys)
    det = sum(sum(v) if isinstance(v, list) else v
              for k, v in losses.items() if k not in kd_keys)
    params = dict((n, p) for n, p in student.named_parameters()
                  if p.requires_grad)
    kd_grads = dict(zip(params, torch.autograd.grad(
        kd, list(params.values()), retain_graph=True, allow_unused=True)))
    before, after = split_head_params(head, IDX[family])
    assert before and after

    det_grads = dict(zip(params, torch.autograd.grad(
        det, list(params.values()), retain_graph=True, allow_unused=True)))

    def nonzero(grad):
        return grad is not None and bool(grad.any())

    # 1. Through the frozen teacher layers into the student's first idx
    #    tower convs, the neck and the backbone: wherever the detection
    #    loss reaches too (ResNet's zero-initialised last BN of each block
    #    leaves its residual branch without any gradient in the first step,
    #    and GN of one channel per group on a 1x1 level passes none).
    for name in before:
        assert nonzero(kd_grads[f'bbox_head.{name}']), name
    trunk = [n for n in params if n.startswith(('neck.', 'backbone.'))]
    assert sum(nonzero(det_grads[n]) for n in trunk) > len(trunk) // 2
    for name in trunk:
        assert nonzero(kd_grads[name]) == nonzero(det_grads[name]), name
    # 3. The student's convs after idx and its predictors: detection only.
    after = [f'bbox_head.{n}' for n in after]
    for name in after:
        assert not nonzero(kd_grads[name]), name
        # (a level's Scale gets none without positives there)
        assert nonzero(det_grads[name]) or '.scales.' in name, name
    (kd + det).backward()
    for name in after:
        torch.testing.assert_close(params[name].grad, det_grads[name],
                                   rtol=1e-6, atol=1e-9)
    # 2. Never into the teacher: no gradients, untouched by a step.
    assert all(p.grad is None and not p.requires_grad
               for p in model.teacher.parameters())
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in model.parameters()}
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


# ---------------------------------------------------------------- configs
CONFIG_KEYS = {
    'crosskd_gfl_r101_r50.py': ['loss_crosskd_cls', 'loss_crosskd_bbox'],
    'crosskd_pkd_gfl_r101_r50.py': [
        'loss_crosskd_cls', 'loss_crosskd_bbox'
    ] + [f'loss_pkd_fpn{i}' for i in range(5)],
    'crosskd_retina_r101_r50.py': ['loss_crosskd_cls', 'loss_crosskd_bbox'],
    'crosskd_atss_r101_r50.py': [
        'loss_crosskd_cls', 'loss_crosskd_bbox', 'loss_crosskd_centerness'
    ],
    'crosskd_fcos_r101_r50.py': ['loss_crosskd_cls', 'loss_crosskd_bbox'],
    'crosskd_gfl_r18-w32_r18-w8_digits.py': [
        'loss_crosskd_cls', 'loss_crosskd_bbox'
    ],
}


def shrink(part):
    """R18 backbone, 32-channel FPN and head: the config's layout, fast."""
    part.backbone = dict(part.get('backbone', {}), depth=18, init_cfg=None)
    part.backbone.pop('_delete_', None)
    part.neck = dict(part.get('neck', {}), in_channels=[64, 128, 256, 512],
                     out_channels=32)
    part.bbox_head = dict(part.get('bbox_head', {}), in_channels=32,
                          feat_channels=32)


@pytest.mark.parametrize('cfg_name', sorted(CONFIG_KEYS))
def test_crosskd_config_one_train_step(cfg_name, one_thread):
    cfg = load_offline_config(cfg_name)
    if 'digits' not in cfg_name:  # the digits models are small already
        shrink(cfg.model.student)
        shrink(cfg.model.teacher)
    cfg.model.allow_random_teacher = True
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    head = model.student.bbox_head
    assert set(CONFIG_KEYS[cfg_name]) == set(model.distill_loss_keys())
    inputs, samples = make_batch(2, 128, num_classes=head.num_classes)
    losses = model.loss(inputs, samples)
    for key in CONFIG_KEYS[cfg_name]:
        assert torch.isfinite(losses[key]) and losses[key] > 0, key
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_images_without_objects(family):
    """No gt: finite KD losses (every location a negative); the ATSS
    centerness KD, on positives only, is 0."""
    s_head, t_head = build_pair(family)
    s_head.train()
    feats, t_feats, samples = random_inputs(8, 8)
    for sample in samples:
        sample.gt_instances = sample.gt_instances[:0]
    feats = tuple(f.float() for f in feats)
    t_feats = tuple(f.float() for f in t_feats)
    with s_head.teacher_step(t_feats, None):
        losses = s_head.loss(feats, samples)
    for key in s_head.distill_loss_keys():
        assert torch.isfinite(losses[key]), key
        assert (losses[key] == 0) == (key == 'loss_crosskd_centerness'), key


# ------------------------------------------------------- two-stage variant
def ref_top_class_l1(x, t, t_logits, num_classes):
    total, weights = 0.0, 0.0
    for r in range(x.shape[0]):
        probs = t_logits[r].softmax(-1)
        c = int(probs[:num_classes].argmax())
        w = probs[c]
        xs = x[r].reshape(-1, 4)[c if x.shape[1] > 4 else 0]
        ts = t[r].reshape(-1, 4)[c if t.shape[1] > 4 else 0]
        total = total + w * (xs - ts).abs().sum()
        weights = weights + w
    return total / (4 * weights)


@pytest.mark.parametrize('agnostic', [False, True])
def test_top_class_deltas_l1_matches_reference(agnostic):
    from mmkd_plugin.models.roi_heads.crosskd_roi_head import \
        top_class_deltas_l1
    gen = torch.Generator().manual_seed(0)
    width = 4 if agnostic else 4 * 5
    x = torch.randn(7, width, generator=gen,
                    dtype=torch.float64).requires_grad_()
    t = torch.randn(7, width, generator=gen, dtype=torch.float64)
    logits = torch.randn(7, 6, generator=gen, dtype=torch.float64) * 2
    ours = top_class_deltas_l1(x, t, logits, 5)
    ref = ref_top_class_l1(x, t, logits, 5)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    g_ours, = torch.autograd.grad(ours, x)
    g_ref, = torch.autograd.grad(ref, x)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-15)
    assert top_class_deltas_l1(x[:0], t[:0], logits[:0], 5) == 0


def tiny_faster_rcnn(roi_type=None, width=32):
    roi_head = dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=64,
                       num_classes=NUM_CLS))
    if roi_type:
        roi_head['type'] = roi_type
    return dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        backbone=dict(SMALL_BACKBONE),
        neck=dict(in_channels=[64, 128, 256, 512], out_channels=width),
        rpn_head=dict(in_channels=width, feat_channels=width),
        roi_head=roi_head,
        train_cfg=dict(rcnn=dict(sampler=dict(num=64))))


def test_crosskd_roi_head_step(one_thread):
    model = MODELS.build(dict(
        type='DistillationDetector',
        student=tiny_faster_rcnn('CrossKDRoIHead'),
        teacher=tiny_faster_rcnn(), allow_random_teacher=True))
    model.init_weights()
    model.train()
    roi_head = model.student.roi_head
    assert model.distill_loss_keys() == ['loss_crosskd_cls',
                                         'loss_crosskd_reg']
    inputs, samples = make_batch(2, 128, num_classes=NUM_CLS)
    losses = model.loss(inputs, samples)
    kd = losses['loss_crosskd_cls'] + losses['loss_crosskd_reg']
    assert torch.isfinite(kd) and losses['loss_crosskd_cls'] > 0 and \
        losses['loss_crosskd_reg'] > 0
    student_params = dict(model.student.named_parameters())
    names = [n for n, p in student_params.items() if p.requires_grad]
    grads = dict(zip(names, torch.autograd.grad(
        kd, [student_params[n] for n in names], retain_graph=True,
        allow_unused=True)))
    # Through the teacher's RoI head into the student's neck only.
    assert all(grads[n] is not None and grads[n].any()
               for n in names if n.startswith('neck.fpn_convs.0'))
    assert all(grads[n] is None or not grads[n].any()
               for n in names if n.startswith(('roi_head.', 'rpn_head.')))
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())


def test_crosskd_roi_head_refuses_other_roi_width():
    with pytest.raises(ValueError) as err:
        MODELS.build(dict(
            type='DistillationDetector',
            student=tiny_faster_rcnn('CrossKDRoIHead'),
            teacher=tiny_faster_rcnn(width=64), allow_random_teacher=True))
    assert 'student roi_head CrossKDRoIHead, teacher roi_head' in str(
        err.value)
    assert 'RoI feature channels: student 32, teacher 64' in str(err.value)
