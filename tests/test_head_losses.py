# Copyright (c) mmkd_plugin contributors.
"""Head-level distillation: LD, KD and DKD losses, the LD GFL head, the
distilling RoI head and their configs.

The loss references below are written from the formulas in
shared/reference/methods.md (plain softmax / log, float64) and share no code
with the library.
"""
import copy

import pytest
import torch
from mmdet.models.task_modules.assigners import ATSSAssigner
from mmdet.registry import MODELS
from mmengine.structures import InstanceData

from mmkd_plugin.models.dense_heads.ld_gfl_head import vlr_weights
from mmkd_plugin.models.losses import DKDLoss, KDLoss, LDLoss
from mmkd_plugin.models.utils import resolve_model_config
from .conftest import load_offline_config, make_batch

RTOL = 1e-5
ATOL = 1e-10
DTYPE = torch.float64


# --------------------------------------------------------------- references
def ref_kl(student, teacher, temp):
    """T^2 * KL(softmax(t / T) || softmax(s / T)) per row (last dim)."""
    p_t = torch.softmax(teacher / temp, dim=-1)
    p_s = torch.softmax(student / temp, dim=-1)
    return (p_t * (p_t.log() - p_s.log())).sum(-1) * temp**2


def ref_standardize(z):
    mean = z.mean(-1, keepdim=True)
    std = ((z - mean)**2).sum(-1, keepdim=True).div(z.shape[-1] - 1).sqrt()
    return (z - mean) / (std + 1e-7)


def ref_kd(student, teacher, temp, weight=1.0, stand=False):
    if stand:
        student, teacher = ref_standardize(student), ref_standardize(teacher)
    return weight * ref_kl(student, teacher, temp).mean()


def ref_dkd_parts(student, teacher, labels, temp, stand=False):
    """Per-sample (TCKD_i, NCKD_i, p_t^T) with the T^2 factor, no / B."""
    if stand:
        student, teacher = ref_standardize(student), ref_standardize(teacher)
    p_s = torch.softmax(student / temp, dim=1)
    p_t = torch.softmax(teacher / temp, dim=1)
    rows = torch.arange(len(labels))
    pt_s, pt_t = p_s[rows, labels], p_t[rows, labels]
    b_s = torch.stack([pt_s, 1 - pt_s], 1)
    b_t = torch.stack([pt_t, 1 - pt_t], 1)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1) * temp**2
    keep = torch.ones_like(p_s, dtype=torch.bool)
    keep[rows, labels] = False
    q_s = p_s[keep].view(len(labels), -1) / (1 - pt_s)[:, None]
    q_t = p_t[keep].view(len(labels), -1) / (1 - pt_t)[:, None]
    nckd = (q_t * (q_t.log() - q_s.log())).sum(1) * temp**2
    return tckd, nckd, pt_t


def ref_ld(student, teacher, weight, temp, loss_weight, divisor=4.0,
           num_pos=None, bin_mean=True):
    kl = ref_kl(student, teacher, temp)  # (L, 4)
    if bin_mean:
        kl = kl / student.shape[-1]
    total = (kl * weight[:, None]).sum() / divisor
    if num_pos is not None:
        total = total / max(num_pos, 1)
    return loss_weight * total


def logits(*shape, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen, dtype=DTYPE) *
            scale).requires_grad_()


def assert_value_and_grad(ours, reference, inputs):
    torch.testing.assert_close(ours, reference, rtol=RTOL, atol=ATOL)
    got = torch.autograd.grad(ours, inputs, retain_graph=True)
    want = torch.autograd.grad(reference, inputs, retain_graph=True)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=RTOL, atol=ATOL)


def assert_no_teacher_grad(loss, teacher):
    grad, = torch.autograd.grad(loss, teacher, retain_graph=True,
                                allow_unused=True)
    assert grad is None or not grad.any()


# --------------------------------------------------------------- LD loss
@pytest.mark.parametrize('kwargs, num_pos, bin_mean, divisor', [
    (dict(), None, True, 4.0),
    (dict(normalize='num_pos'), 7, True, 4.0),
    (dict(bin_reduction='sum', divisor=16.0), None, False, 16.0),
])
def test_ld_loss_matches_formula(kwargs, num_pos, bin_mean, divisor):
    student, teacher = logits(9, 4, 17, seed=1), logits(9, 4, 17, seed=2)
    weight = torch.rand(9, dtype=DTYPE)
    loss = LDLoss(temperature=10.0, loss_weight=0.25, **kwargs)
    ours = loss(student, teacher, weight=weight, num_pos=num_pos)
    ref = ref_ld(student, teacher, weight, 10.0, 0.25, divisor, num_pos,
                 bin_mean)
    assert_value_and_grad(ours, ref, [student])
    assert_no_teacher_grad(ours, teacher)


def test_ld_loss_reference_quirks():
    student, teacher = logits(6, 4, 17, seed=3), logits(6, 4, 17, seed=4)
    weight = torch.rand(6, dtype=DTYPE)
    quirky = LDLoss()
    # Not normalised by the number of locations: twice the locations (a
    # second image with the same content) give twice the loss.
    twice = quirky(torch.cat([student, student]),
                   torch.cat([teacher, teacher]), torch.cat([weight, weight]))
    torch.testing.assert_close(twice, 2 * quirky(student, teacher, weight))
    normalised = LDLoss(normalize='num_pos')
    torch.testing.assert_close(
        normalised(torch.cat([student, student]),
                   torch.cat([teacher, teacher]), torch.cat([weight, weight]),
                   num_pos=12), normalised(student, teacher, weight, 6))
    # The bin mean is the true KL / (reg_max + 1).
    torch.testing.assert_close(
        LDLoss(bin_reduction='sum')(student, teacher, weight),
        17 * quirky(student, teacher, weight))
    # Same as mmdet's port of the reference loss with avg_factor=4.
    mmdet_kd = MODELS.build(
        dict(type='KnowledgeDistillationKLDivLoss', loss_weight=0.25, T=10))
    theirs = mmdet_kd(student.reshape(-1, 17), teacher.reshape(-1, 17),
                      weight=weight[:, None].expand(-1, 4).reshape(-1),
                      avg_factor=4.0)
    torch.testing.assert_close(quirky(student, teacher, weight), theirs)
    with pytest.raises(ValueError, match='normalize'):
        LDLoss(normalize='batch')


# --------------------------------------------------------------- KD / DKD
@pytest.mark.parametrize('stand', [False, True])
@pytest.mark.parametrize('temp', [1.0, 4.0])
def test_kd_loss_matches_formula(stand, temp):
    student, teacher = logits(8, 81, seed=5), logits(8, 81, seed=6)
    loss = KDLoss(temperature=temp, loss_weight=0.7,
                  logit_standardization=stand)
    ours = loss(student, teacher)
    assert_value_and_grad(
        ours, ref_kd(student, teacher, temp, 0.7, stand), [student])
    assert_no_teacher_grad(ours, teacher)


@pytest.mark.parametrize('stand', [False, True])
@pytest.mark.parametrize('alpha, beta, temp', [(1.0, 8.0, 4.0),
                                               (1.0, 0.25, 1.0),
                                               (0.5, 2.0, 2.0)])
def test_dkd_loss_matches_formula(alpha, beta, temp, stand):
    student, teacher = logits(10, 81, seed=7), logits(10, 81, seed=8)
    labels = torch.tensor([0, 80, 80, 3, 17, 80, 79, 5, 80, 40])
    loss = DKDLoss(alpha=alpha, beta=beta, temperature=temp, loss_weight=1.5,
                   logit_standardization=stand)
    ours = loss(student, teacher, labels)
    tckd, nckd, _ = ref_dkd_parts(student, teacher, labels, temp, stand)
    ref = 1.5 * (alpha * tckd.sum() + beta * nckd.sum()) / len(labels)
    assert_value_and_grad(ours, ref, [student])
    assert_no_teacher_grad(ours, teacher)


@pytest.mark.parametrize('stand', [False, True])
@pytest.mark.parametrize('temp', [1.0, 4.0])
def test_kd_decomposes_into_tckd_and_nckd(temp, stand):
    """Per sample: KD = TCKD + (1 - p_t^T) * NCKD, all with T^2 (B = 1)."""
    student, teacher = logits(12, 21, seed=9), logits(12, 21, seed=10)
    labels = torch.randint(0, 21, (12, ),
                           generator=torch.Generator().manual_seed(0))
    kd = KDLoss(temperature=temp, logit_standardization=stand)
    tckd = DKDLoss(alpha=1.0, beta=0.0, temperature=temp,
                   logit_standardization=stand)
    nckd = DKDLoss(alpha=0.0, beta=1.0, temperature=temp,
                   logit_standardization=stand)
    z_t = ref_standardize(teacher) if stand else teacher
    p_target = torch.softmax(z_t / temp, 1)[torch.arange(12), labels]
    per_sample = []
    for i in range(12):
        s, t, y = student[i:i + 1], teacher[i:i + 1], labels[i:i + 1]
        decomposed = tckd(s, t, y) + (1 - p_target[i]) * nckd(s, t, y)
        assert_value_and_grad(kd(s, t), decomposed, [student])
        per_sample.append(decomposed)
    # Over a batch, KD is the mean of the per-sample decompositions.
    torch.testing.assert_close(kd(student, teacher),
                               torch.stack(per_sample).mean(),
                               rtol=RTOL, atol=ATOL)


def test_logit_standardization_is_scale_and_shift_invariant():
    student, teacher = logits(5, 30, seed=11), logits(5, 30, seed=12)
    labels = torch.tensor([1, 2, 3, 4, 29])
    scale = torch.rand(5, 1, dtype=DTYPE) * 4 + 0.5
    shift = torch.randn(5, 1, dtype=DTYPE) * 10
    for loss, args in ((KDLoss(logit_standardization=True), ()),
                       (DKDLoss(logit_standardization=True), (labels, ))):
        torch.testing.assert_close(
            loss(student * scale + shift, teacher * scale - shift, *args),
            loss(student, teacher, *args), rtol=1e-6, atol=1e-9)
    assert not torch.allclose(KDLoss()(student * 2, teacher),
                              KDLoss()(student, teacher))


def test_dkd_rejects_bad_labels():
    with pytest.raises(ValueError, match=r'\[0, 5\)'):
        DKDLoss()(torch.zeros(2, 5), torch.zeros(2, 5), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match='same'):
        KDLoss()(torch.zeros(2, 5), torch.zeros(2, 6))


# --------------------------------------------------------------- VLR
def ref_iou_diou(box, gts, overlap='iou'):
    """IoU and DIoU of one box with every gt, from the definitions; with
    ``overlap='iof'`` the DIoU's IoU is replaced by the intersection over
    the box's own area (the LD authors' ``bbox_overlaps(mode='diou')``)."""
    ious, dious = [], []
    for gt in gts:
        iw = (torch.min(box[2], gt[2]) - torch.max(box[0], gt[0])).clamp(min=0)
        ih = (torch.min(box[3], gt[3]) - torch.max(box[1], gt[1])).clamp(min=0)
        inter = iw * ih
        union = ((box[2] - box[0]) * (box[3] - box[1]) +
                 (gt[2] - gt[0]) * (gt[3] - gt[1]) - inter)
        iou = inter / union
        iof = inter / ((box[2] - box[0]) * (box[3] - box[1]))
        dist2 = ((box[:2] + box[2:]) / 2 - (gt[:2] + gt[2:]) / 2).pow(2).sum()
        cw = torch.max(box[2], gt[2]) - torch.min(box[0], gt[0])
        ch = torch.max(box[3], gt[3]) - torch.min(box[1], gt[1])
        ious.append(iou)
        dious.append((iof if overlap == 'iof' else iou) - dist2 /
                     (cw**2 + ch**2))
    return torch.stack(ious), torch.stack(dious)


@pytest.mark.parametrize('overlap', ['iou', 'iof'])
def test_vlr_weights_match_definition(overlap):
    gen = torch.Generator().manual_seed(3)
    levels = [40, 25, 10]
    sizes = [16.0, 32.0, 64.0]
    priors = []
    for count, size in zip(levels, sizes):
        centres = torch.rand(count, 2, generator=gen, dtype=DTYPE) * 128
        priors.append(torch.cat([centres - size / 2, centres + size / 2], 1))
    priors = torch.cat(priors)
    xy = torch.rand(3, 2, generator=gen, dtype=DTYPE) * 90
    gts = torch.cat([xy, xy + 12 + torch.rand(3, 2, generator=gen,
                                              dtype=DTYPE) * 40], 1)
    assigner = ATSSAssigner(topk=5)
    ours = vlr_weights(priors, levels, gts, topk=5,
                       iou_calculator=assigner.iou_calculator,
                       diou_overlap=overlap)

    pair = [ref_iou_diou(p, gts, overlap) for p in priors]
    iou = torch.stack([p[0] for p in pair])
    diou = torch.stack([p[1] for p in pair])
    centres = (priors[:, :2] + priors[:, 2:]) / 2
    thresholds = []
    for g, gt in enumerate(gts):
        dist = (centres - (gt[:2] + gt[2:]) / 2).norm(dim=1)
        candidate_ious, start = [], 0
        for count in levels:
            order = dist[start:start + count].argsort()[:5] + start
            candidate_ious.append(iou[order, g])
            start += count
        candidate_ious = torch.cat(candidate_ious)
        thresholds.append(candidate_ious.mean() + candidate_ious.std())
    expected = torch.zeros(len(priors), dtype=DTYPE)
    for a in range(len(priors)):
        for g, thr in enumerate(thresholds):
            if 0.25 * thr <= diou[a, g] < thr:
                expected[a] = max(expected[a], iou[a, g])
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
    assert (ours > 0).sum() >= 3
    other = vlr_weights(priors, levels, gts, topk=5,
                        iou_calculator=assigner.iou_calculator,
                        diou_overlap='iof' if overlap == 'iou' else 'iou')
    assert not torch.equal(ours > 0, other > 0)

    # The thresholds are the assigner's: its positives reach them.
    result = assigner.assign(
        InstanceData(priors=priors), levels,
        InstanceData(bboxes=gts, labels=torch.zeros(3, dtype=torch.long)))
    pos = (result.gt_inds > 0).nonzero()[:, 0]
    assert len(pos)
    for a in pos:
        g = result.gt_inds[a] - 1
        assert iou[a, g] >= thresholds[g] - 1e-9


# ------------------------------------------------ LD classification KD
NUM_CLS = 5
LEVEL_HW = [(6, 5), (3, 3), (2, 2)]


def tiny_ld_head(loss_kd_cls, **kwargs):
    """An LDGFLHead with classification KD only (no assigner needed)."""
    return MODELS.build(dict(
        type='LDGFLHead', num_classes=NUM_CLS, in_channels=4,
        feat_channels=4, stacked_convs=1, reg_max=3,
        norm_cfg=dict(type='GN', num_groups=2, requires_grad=True),
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0],
                              octave_base_scale=8, scales_per_octave=1,
                              strides=[8, 16, 32]),
        loss_ld=None, loss_kd_cls=loss_kd_cls, **kwargs))


def head_outputs(seed, num_images=2):
    """Per-level student / teacher maps and labels: level 0 has several
    positives per image, level 1 one, level 2 none."""
    gen = torch.Generator().manual_seed(seed)

    def maps(channels):
        return [torch.randn(num_images, channels, h, w, generator=gen,
                            dtype=DTYPE) * 3 for h, w in LEVEL_HW]

    s_cls = [m.requires_grad_() for m in maps(NUM_CLS)]
    t_cls = maps(NUM_CLS)
    s_reg, t_reg = maps(16), maps(16)
    labels = []
    for level, (h, w) in enumerate(LEVEL_HW):
        lab = torch.full((num_images, h * w), NUM_CLS, dtype=torch.long)
        if level == 0:
            lab[0, [1, 4, 7, 20]] = torch.tensor([0, 3, 3, 1])
            lab[1, [0, 29]] = torch.tensor([4, 2])
        elif level == 1:
            lab[1, 5] = 2
        labels.append(lab)
    return s_cls, s_reg, t_cls, t_reg, labels


def ref_cls_kd(s_cls, t_cls, labels, temp, loss_weight, class_mean,
               per_level):
    """The authors' LD head: per level, sum over its positives of the
    T^2-scaled KL (averaged over the classes by their KD loss) divided by
    that level's positive count; the levels are summed. ``per_level=False``
    divides the sum over all levels by the total count instead."""
    level_sums, level_counts = [], []
    for s_map, t_map, lab in zip(s_cls, t_cls, labels):
        total, count = s_map.new_zeros(()), 0
        for i in range(s_map.shape[0]):
            s_rows = s_map[i].reshape(NUM_CLS, -1).t()
            t_rows = t_map[i].reshape(NUM_CLS, -1).t()
            for loc, label in enumerate(lab[i].tolist()):
                if not 0 <= label < NUM_CLS:
                    continue
                p_s = torch.softmax(s_rows[loc] / temp, 0)
                p_t = torch.softmax(t_rows[loc] / temp, 0)
                kl = (p_t * (p_t.log() - p_s.log())).sum() * temp**2
                total = total + (kl / NUM_CLS if class_mean else kl)
                count += 1
        level_sums.append(total)
        level_counts.append(count)
    if per_level:
        return loss_weight * sum(
            total / count for total, count in zip(level_sums, level_counts)
            if count > 0)
    return loss_weight * sum(level_sums) / sum(level_counts)


LD_CLS_KD = dict(type='LDLoss', temperature=2.0, loss_weight=10.0,
                 normalize='num_pos', divisor=1.0)
KD_CLS_KD = dict(type='KDLoss', temperature=2.0, loss_weight=3.0)


@pytest.mark.parametrize('normalize', ['per_level', 'global', None])
@pytest.mark.parametrize('loss_cfg', [LD_CLS_KD, KD_CLS_KD])
def test_ld_head_cls_kd_normalisation(loss_cfg, normalize):
    """loss_kd_cls equals a loop over levels and positives written from the
    authors' per-level definition (default), or the global mean."""
    kwargs = {} if normalize is None else dict(cls_kd_normalize=normalize)
    head = tiny_ld_head(loss_cfg, **kwargs).double()
    s_cls, s_reg, t_cls, t_reg, labels = head_outputs(seed=7)
    ours = head._distill_losses(s_cls, s_reg, t_cls, t_reg,
                                dict(labels=labels))['loss_kd_cls']
    class_mean = loss_cfg['type'] == 'LDLoss'
    ref = ref_cls_kd(s_cls, t_cls, labels, 2.0, loss_cfg['loss_weight'],
                     class_mean, per_level=normalize != 'global')
    assert_value_and_grad(ours, ref, s_cls[:2])
    # level 2 has no positive: nothing reaches it
    grad, = torch.autograd.grad(ours, s_cls[2], retain_graph=True,
                                allow_unused=True)
    assert grad is None or not grad.any()
    other = ref_cls_kd(s_cls, t_cls, labels, 2.0, loss_cfg['loss_weight'],
                       class_mean, per_level=normalize == 'global')
    assert not torch.allclose(ours, other, rtol=1e-2)


def test_ld_head_cls_kd_options_checked():
    with pytest.raises(ValueError, match='cls_kd_normalize'):
        tiny_ld_head(LD_CLS_KD, cls_kd_normalize='per_image')
    with pytest.raises(ValueError, match='LDLoss or a KDLoss'):
        tiny_ld_head(dict(type='DKDLoss'))


# --------------------------------------------------------------- models
@pytest.fixture(scope='module')
def built():
    """Build each config once per module: ``built(name) -> (model, cfg)``."""
    cache = {}

    def get(cfg_name):
        if cfg_name not in cache:
            cfg = load_offline_config(cfg_name)
            cache[cfg_name] = (MODELS.build(cfg.model), cfg)
        return cache[cfg_name]

    yield get
    cache.clear()


DISTILL_KEYS = {
    'ld_gfl_r101_r18.py': ['loss_ld'],
    'ld_gfl_r101_r50.py': ['loss_ld', 'loss_ld_vlr', 'loss_kd_cls'],
    'ld_gfl_r18-w32_r18-w8_digits.py': ['loss_ld', 'loss_ld_vlr', 'loss_kd_cls'],
    'fgd_ld_gfl_r101_r50.py': ['loss_ld'] + [f'loss_fgd_fpn{i}'
                                             for i in range(5)],
    'dkd_faster-rcnn_r101_r18.py': ['loss_dkd'],
    'kd_faster-rcnn_r101_r18.py': ['loss_kd'],
    'dkd_faster-rcnn_r18-w32_r18-w8_digits.py': ['loss_dkd'],
}


@pytest.mark.parametrize('cfg_name', sorted(DISTILL_KEYS))
def test_config_train_step(built, cfg_name):
    model, _ = built(cfg_name)
    model.train()
    model.zero_grad()
    head = (model.student.bbox_head if 'gfl' in cfg_name else
            model.student.roi_head.bbox_head)
    inputs, samples = make_batch(num_images=1, size=160,
                                 num_classes=head.num_classes)
    losses = model.loss(inputs, samples)
    keys = DISTILL_KEYS[cfg_name]
    assert set(keys) <= set(losses), sorted(losses)
    for key in keys:
        assert torch.isfinite(losses[key]) and losses[key] > 0, key
    # The head-level term alone reaches the student's head.
    head_key = keys[0]
    head_layer = head.gfl_reg if 'gfl' in cfg_name else head.fc_cls
    grad, = torch.autograd.grad(losses[head_key], head_layer.weight,
                                retain_graph=True)
    assert grad.abs().sum() > 0
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(not p.requires_grad for p in model.teacher.parameters())


def test_ld_r50_config_matches_the_authors(built):
    """configs/ld_gfl_r101_r50.py against the authors' R50 setting
    (HikariTJU/LD configs/ld/ld_r50_gflv1_r101_fpn_coco_1x.py and their
    LDHead): main LD and VLR LD T 10, weight 0.25, / 4 and / 16; KD T 2,
    weight 10, KL averaged over the classes, per FPN level; VLR DIoU with
    their intersection-over-anchor overlap; 2 images per GPU."""
    model, cfg = built('ld_gfl_r101_r50.py')
    head = model.student.bbox_head
    assert head.cls_kd_normalize == 'per_level'
    assert head.vlr_diou_overlap == 'iof'
    for loss, divisor in ((head.loss_ld, 4), (head.loss_ld_vlr, 16)):
        assert isinstance(loss, LDLoss) and loss.bin_reduction == 'mean'
        assert (loss.temperature, loss.loss_weight, loss.divisor,
                loss.normalize) == (10, 0.25, divisor, 'constant')
    kd = head.loss_kd_cls
    assert isinstance(kd, LDLoss) and kd.bin_reduction == 'mean'
    assert (kd.temperature, kd.loss_weight, kd.divisor) == (2, 10, 1)
    assert cfg.train_dataloader.batch_size == 2


@pytest.mark.parametrize('cfg_name, key', [
    ('ld_gfl_r101_r50.py', 'loss_ld_vlr'),
    ('dkd_faster-rcnn_r101_r18.py', 'loss_dkd'),
])
def test_head_distillation_under_teacher_bfloat16(built, cfg_name, key):
    """The teacher heads run under the detector's teacher autocast on the
    bfloat16 features it then gives (the R101 backbone itself is run in
    float32 here: bfloat16 convolutions are slow on CPU)."""
    model, _ = built(cfg_name)
    model.train()
    head = (model.student.bbox_head
            if 'gfl' in cfg_name else model.student.roi_head)
    inputs, samples = make_batch(num_images=1, size=160, seed=2)
    with torch.no_grad():
        feats = tuple(f.bfloat16() for f in model.teacher.extract_feat(inputs))
    with head.teacher_step(feats, torch.bfloat16):
        losses = model.student.loss(inputs, samples)
    assert losses[key].dtype == torch.float32
    assert torch.isfinite(losses[key]) and losses[key] > 0


def test_ld_head_matches_mmdet_ld_head(built):
    """Main LD and the GFL losses equal mmdet's port of the reference
    LDHead given the same weights, features and teacher outputs."""
    model, cfg = built('ld_gfl_r101_r18.py')
    model.train()
    head = model.student.bbox_head
    inputs, samples = make_batch(size=160, seed=4)
    with torch.no_grad():
        teacher_feats = model.teacher.extract_feat(inputs)
        teacher_outs = model.teacher.bbox_head(teacher_feats)
        feats = model.student.extract_feat(inputs)
    with head.teacher_step(teacher_feats, None):
        ours = head.loss(feats, samples)

    student_cfg = resolve_model_config(cfg.model.student, 'student')
    ref_cfg = copy.deepcopy(student_cfg.bbox_head).to_dict()
    ref_cfg.update(
        type='LDHead',
        loss_ld=dict(type='KnowledgeDistillationKLDivLoss', loss_weight=0.25,
                     T=10),
        train_cfg=student_cfg.train_cfg, test_cfg=student_cfg.test_cfg)
    reference = MODELS.build(ref_cfg)
    reference.load_state_dict(head.state_dict())
    reference.train()
    theirs = reference.loss(feats, teacher_outs, samples)
    for key in ('loss_cls', 'loss_bbox', 'loss_dfl'):
        torch.testing.assert_close(sum(ours[key]), sum(theirs[key]))
    torch.testing.assert_close(ours['loss_ld'], sum(theirs['loss_ld']))
    assert ours['loss_ld'] > 0


def test_teacher_roi_head_sees_the_student_sampled_rois(built):
    model, _ = built('dkd_faster-rcnn_r101_r18.py')
    model.train()
    seen = {}

    def record(name):

        def hook(module, args, output):
            seen[name] = args[1].detach().clone()

        return hook

    roi_head = model.student.roi_head
    handles = [
        roi_head.bbox_roi_extractor.register_forward_hook(record('student')),
        model.teacher.roi_head.bbox_roi_extractor.register_forward_hook(
            record('teacher')),
        roi_head.distill_loss.register_forward_hook(
            lambda m, args, out: seen.update(loss_args=args)),
    ]
    try:
        inputs, samples = make_batch(size=160, seed=5)
        losses = model.loss(inputs, samples)
    finally:
        for handle in handles:
            handle.remove()
    assert torch.equal(seen['student'], seen['teacher'])
    student_logits, teacher_logits, labels = seen['loss_args']
    rois = seen['teacher']
    assert len(rois) == len(labels) == len(student_logits) > len(samples)
    assert student_logits.shape[1] == 81
    assert (labels == 80).any() and (labels < 80).any()
    # Every gt box is among the rois (add_gt_as_proposals), labelled.
    for i, sample in enumerate(samples):
        own = rois[rois[:, 0] == i, 1:]
        for box in sample.gt_instances.bboxes:
            assert (own == box).all(1).any()
    with torch.no_grad():
        expected = model.teacher.roi_head._bbox_forward(
            model.teacher.extract_feat(inputs), rois)['cls_score']
    torch.testing.assert_close(teacher_logits, expected)
    assert not teacher_logits.requires_grad
    assert torch.isfinite(losses['loss_dkd'])


# --------------------------------------------------------------- linking
SMALL_BACKBONE = dict(depth=18, init_cfg=None)
SMALL_NECK = dict(in_channels=[64, 128, 256, 512])


def small_gfl(**head):
    return dict(cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
                backbone=SMALL_BACKBONE, neck=SMALL_NECK,
                bbox_head=head)


def build_with_teacher(cfg_name, teacher):
    cfg = load_offline_config(cfg_name)
    cfg.model.teacher = teacher
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('teacher, messages', [
    (small_gfl(reg_max=8), ['reg_max', 'student 16', 'teacher 8']),
    (small_gfl(anchor_generator=dict(strides=[4, 8, 16, 32, 64])),
     ['strides', 'student [(8, 8)', 'teacher [(4, 4)']),
    (small_gfl(anchor_generator=dict(octave_base_scale=4)),
     ['scales', 'student [8.0]', 'teacher [4.0]']),
    (dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
          backbone=SMALL_BACKBONE), ['GFL-style', 'RetinaHead']),
])
def test_ld_head_refuses_incompatible_teacher(teacher, messages):
    with pytest.raises(ValueError) as err:
        build_with_teacher('ld_gfl_r101_r18.py', teacher)
    for message in messages:
        assert message in str(err.value), str(err.value)


def test_ld_head_accepts_teacher_with_other_fpn_width():
    teacher = small_gfl(in_channels=128, feat_channels=128)
    teacher['neck'] = dict(SMALL_NECK, out_channels=128)
    model = build_with_teacher('ld_gfl_r101_r18.py', teacher)
    model.train()
    inputs, samples = make_batch(num_images=1, size=160)
    losses = model.loss(inputs, samples)
    assert torch.isfinite(losses['loss_ld']) and losses['loss_ld'] > 0


@pytest.mark.parametrize('teacher, messages', [
    (small_gfl(), ['StandardRoIHead', 'GFL']),
    (dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
          backbone=SMALL_BACKBONE, neck=SMALL_NECK,
          roi_head=dict(bbox_head=dict(num_classes=20))),
     ['num_classes', 'student 80', 'teacher 20']),
])
def test_roi_head_refuses_incompatible_teacher(teacher, messages):
    with pytest.raises(ValueError) as err:
        build_with_teacher('dkd_faster-rcnn_r101_r18.py', teacher)
    for message in messages:
        assert message in str(err.value), str(err.value)


# --------------------------------------------------------------- precision
LOGIT_LOSSES = {
    'KD': (lambda: KDLoss(temperature=2.0), ()),
    'KD-standardised': (
        lambda: KDLoss(temperature=2.0, logit_standardization=True), ()),
    'DKD': (lambda: DKDLoss(beta=2.0, temperature=2.0), ('labels', )),
    'LD': (lambda: LDLoss(normalize='num_pos'), ('weight', 'num_pos')),
}


@pytest.mark.parametrize('name', sorted(LOGIT_LOSSES))
def test_logit_loss_in_float32_under_bf16_autocast(name):
    """Inside CPU bfloat16 autocast, with bfloat16 logits, every logit loss
    returns the float32 value of the same logits upcast, computed outside
    autocast."""
    build, extra = LOGIT_LOSSES[name]
    loss = build()
    gen = torch.Generator().manual_seed(11)
    shape = (7, 4, 17) if name == 'LD' else (7, 9)
    student = (torch.randn(*shape, generator=gen) * 3).bfloat16()
    teacher = (torch.randn(*shape, generator=gen) * 3).bfloat16()
    args = dict(labels=torch.randint(0, 9, (7, ), generator=gen),
                weight=torch.rand(7, generator=gen).bfloat16(), num_pos=5)
    kwargs = {key: args[key] for key in extra}
    expected = loss(student.float(), teacher.float(), **{
        key: value.float() if key == 'weight' else value
        for key, value in kwargs.items()})
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(student, teacher, **kwargs)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=0)
