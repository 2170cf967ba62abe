# Copyright (c) mmkd_plugin contributors.
"""SDDLoss (Wei et al., CVPR 2024) against a float64 loop implementation."""
import math

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.registry import MODELS

from mmkd_plugin.models.losses import DKDLoss, KDLoss, SDDLoss
from mmkd_plugin.models.losses.sdd_loss import (multi_scale_regions,
                                                region_weights)

NUM_CLASSES = 5


class TinyClassifier(nn.Module):
    """A model with its final classifier at ``head.fc``."""

    def __init__(self, channels: int, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, channels, 1)
        self.head = nn.Module()
        self.head.fc = nn.Linear(channels, num_classes)


# ----------------------------------------------------------------------------
# Independent reference: loops over regions and samples, explicit formulas.
# ----------------------------------------------------------------------------
def _bins(size: int, num_bins: int):
    """Adaptive-pooling bin [start, end) boundaries."""
    return [(math.floor(i * size / num_bins),
             math.ceil((i + 1) * size / num_bins)) for i in range(num_bins)]


def _ref_regions(feat_map, scales):
    """List of region features (C, ) of one sample's map (C, H, W), in the
    order [P1, P2 row-major, P4 row-major]."""
    _, height, width = feat_map.shape
    cells = [[feat_map[:, r0:r1, c0:c1].mean(dim=(1, 2))
              for c0, c1 in _bins(width, 4)] for r0, r1 in _bins(height, 4)]
    regions = []
    for scale in sorted(scales):
        block = 4 // scale
        for row in range(scale):
            for col in range(scale):
                members = [cells[row * block + i][col * block + j]
                           for i in range(block) for j in range(block)]
                regions.append(torch.stack(members).mean(dim=0))
    return regions


def _standardized(z):
    return (z - z.mean()) / (z.std() + 1e-7)


def _ref_kd(z_s, z_t, label, temp, alpha, beta):
    p_s, p_t = torch.softmax(z_s / temp, 0), torch.softmax(z_t / temp, 0)
    return temp**2 * (p_t * (p_t.log() - p_s.log())).sum()


def _ref_dkd(z_s, z_t, label, temp, alpha, beta):
    p_s, p_t = torch.softmax(z_s / temp, 0), torch.softmax(z_t / temp, 0)
    b_s = torch.stack([p_s[label], 1 - p_s[label]])
    b_t = torch.stack([p_t[label], 1 - p_t[label]])
    tckd = (b_t * (b_t.log() - b_s.log())).sum()
    others = [k for k in range(z_s.shape[0]) if k != label]
    q_s = torch.softmax(z_s[others] / temp, 0)
    q_t = torch.softmax(z_t[others] / temp, 0)
    nckd = (q_t * (q_t.log() - q_s.log())).sum()
    return temp**2 * (alpha * tckd + beta * nckd)


def reference_sdd(s_feat, t_feat, labels, s_fc, t_fc, scales, loss='kd',
                  temp=4.0, alpha=1.0, beta=8.0, standardize=False):
    """SDD loss and the per-row weights (region-major list)."""
    row_loss = _ref_kd if loss == 'kd' else _ref_dkd
    total, weights = 0.0, []
    per_sample_regions = [
        (_ref_regions(s_feat[b], scales), _ref_regions(t_feat[b], scales))
        for b in range(len(labels))
    ]
    num_regions = len(per_sample_regions[0][0])
    for region in range(num_regions):
        for b, label in enumerate(labels.tolist()):
            s_regions, t_regions = per_sample_regions[b]
            z_s = s_regions[region] @ s_fc.weight.T + s_fc.bias
            z_t = (t_regions[region] @ t_fc.weight.T + t_fc.bias).detach()
            z_t_global = t_regions[0] @ t_fc.weight.T + t_fc.bias
            local_right = int(z_t.argmax()) == label
            global_right = int(z_t_global.argmax()) == label
            weight = 1.0 if local_right == global_right else 2.0
            if standardize:
                z_s, z_t = _standardized(z_s), _standardized(z_t)
            total = total + weight * row_loss(z_s, z_t, label, temp, alpha,
                                              beta)
            weights.append(weight)
    return total / (num_regions * len(labels)), weights


def _setup(student_channels=8, teacher_channels=6, student_size=(8, 8),
           teacher_size=(7, 7), batch=3, seed=0):
    torch.manual_seed(seed)
    student = TinyClassifier(student_channels).double()
    teacher = TinyClassifier(teacher_channels).double()
    s_feat = torch.randn(batch, student_channels, *student_size,
                         dtype=torch.float64, requires_grad=True)
    t_feat = 2 * torch.randn(batch, teacher_channels, *teacher_size,
                             dtype=torch.float64)
    labels = torch.randint(0, NUM_CLASSES, (batch, ))
    return student, teacher, s_feat, t_feat, labels


def _built(student, teacher, **kwargs):
    loss = SDDLoss(**kwargs)
    loss.link_models(student, teacher)
    return loss


@pytest.mark.parametrize('standardize', [False, True])
@pytest.mark.parametrize('scales', [(1, 2), (1, 2, 4), (4, 1)])
@pytest.mark.parametrize('per_row', ['kd', 'dkd'])
def test_matches_reference_values_and_gradients(per_row, scales, standardize):
    # Student 8x8 with 8 channels, teacher 7x7 (overlapping adaptive bins)
    # with 6 channels. Seed 0: some sample's global row and first P4 cell
    # disagree, so a wrong region order changes the weights.
    student, teacher, s_feat, t_feat, labels = _setup(seed=0)
    kwargs = dict(temperature=2.0, alpha=0.7, beta=3.0)
    loss = _built(student, teacher, scales=scales, loss=per_row,
                  logit_standardization=standardize, **kwargs)
    value = loss(s_feat, t_feat, labels=labels)
    expected, weights = reference_sdd(
        s_feat, t_feat, labels, student.head.fc, teacher.head.fc, scales,
        per_row, temp=2.0, alpha=0.7, beta=3.0, standardize=standardize)
    batch = len(labels)
    # The case exercises both weights outside the global rows.
    assert 2.0 in weights[batch:] and 1.0 in weights[batch:]
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)

    params = [s_feat, student.head.fc.weight, student.head.fc.bias]
    grads = torch.autograd.grad(value, params)
    expected_grads = torch.autograd.grad(expected, params)
    for grad, expected_grad in zip(grads, expected_grads):
        assert grad.abs().sum() > 0
        torch.testing.assert_close(grad, expected_grad, rtol=1e-9,
                                   atol=1e-12)


@pytest.mark.parametrize('per_row', ['kd', 'dkd'])
def test_global_scale_only_is_plain_kd_on_pooled_logits(per_row):
    student, teacher, s_feat, t_feat, labels = _setup(teacher_size=(8, 8))
    loss = _built(student, teacher, scales=(1, ), loss=per_row,
                  temperature=3.0, beta=2.0, loss_weight=0.5)
    s_logits = student.head.fc(s_feat.mean(dim=(2, 3)))
    t_logits = teacher.head.fc(t_feat.mean(dim=(2, 3)))
    if per_row == 'kd':
        plain = KDLoss(temperature=3.0, loss_weight=0.5)(s_logits, t_logits)
    else:
        plain = DKDLoss(beta=2.0, temperature=3.0,
                        loss_weight=0.5)(s_logits, t_logits, labels)
    torch.testing.assert_close(loss(s_feat, t_feat, labels=labels), plain,
                               rtol=1e-10, atol=1e-12)


def _hand_built_teacher():
    """Teacher whose class-k logit is channel k, on 4x4 maps of 2 samples.

    Sample 0 (label 0): channel 0 is 1 everywhere, channel 1 is 3 on the
    top-left quadrant: globally right (1 > 0.75), wrong on that quadrant
    and its 4 cells. Sample 1 (label 2): channel 3 is 1 everywhere, channel
    2 is 3 on the bottom-right quadrant: globally wrong, right there.
    """
    teacher = TinyClassifier(8).double()
    with torch.no_grad():
        teacher.head.fc.weight.copy_(torch.eye(NUM_CLASSES, 8))
        teacher.head.fc.bias.zero_()
    t_feat = torch.zeros(2, 8, 4, 4, dtype=torch.float64)
    t_feat[0, 0] = 1.0
    t_feat[0, 1, :2, :2] = 3.0
    t_feat[1, 3] = 1.0
    t_feat[1, 2, 2:, 2:] = 3.0
    return teacher, t_feat, torch.tensor([0, 2])


def test_region_weights_on_hand_built_case():
    teacher, t_feat, labels = _hand_built_teacher()
    rows = teacher.head.fc(multi_scale_regions(t_feat, (1, 2, 4)))
    cells_0, cells_1 = [1.0] * 16, [1.0] * 16
    for index in (0, 1, 4, 5):  # top-left 2x2 cells of the 4x4 grid
        cells_0[index] = 2.0
    for index in (10, 11, 14, 15):  # bottom-right ones
        cells_1[index] = 2.0
    expected = [1.0, 1.0,  # global rows
                2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0]  # P2: TL, TR, BL, BR
    expected += [w for pair in zip(cells_0, cells_1) for w in pair]
    weights = region_weights(rows, labels, num_regions=21)
    assert weights.tolist() == expected


@pytest.mark.parametrize('per_row', ['kd', 'dkd'])
def test_loss_weights_complementary_rows_twice(per_row):
    teacher, t_feat, labels = _hand_built_teacher()
    torch.manual_seed(1)
    student = TinyClassifier(4).double()
    s_feat = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    loss = _built(student, teacher, scales=(1, 2), loss=per_row)
    s_rows = student.head.fc(multi_scale_regions(s_feat, (1, 2)))
    t_rows = teacher.head.fc(multi_scale_regions(t_feat, (1, 2)))
    row_loss = _ref_kd if per_row == 'kd' else _ref_dkd
    per_row_values = torch.stack([
        row_loss(s_rows[i], t_rows[i], int(labels[i % 2]), 4.0, 1.0, 8.0)
        for i in range(10)
    ])
    weights = torch.tensor([1, 1, 2, 1, 1, 1, 1, 1, 1, 2.0],
                           dtype=torch.float64)
    expected = (weights * per_row_values).sum() / 10
    torch.testing.assert_close(loss(s_feat, t_feat, labels=labels), expected,
                               rtol=1e-10, atol=1e-12)


def test_teacher_and_its_classifier_get_no_gradient():
    student, teacher, s_feat, t_feat, labels = _setup()
    t_feat.requires_grad_(True)
    grad_modes = []
    teacher.head.fc.register_forward_hook(
        lambda *_: grad_modes.append(torch.is_grad_enabled()))
    loss = _built(student, teacher, loss='dkd')
    loss(s_feat, t_feat, labels=labels).backward()
    assert grad_modes == [False]
    assert t_feat.grad is None
    assert teacher.head.fc.weight.grad is None
    assert teacher.head.fc.bias.grad is None
    assert student.head.fc.weight.grad.abs().sum() > 0
    assert s_feat.grad.abs().sum() > 0


def test_classifiers_are_not_submodules_of_the_loss():
    student, teacher, *_ = _setup()
    loss = _built(student, teacher)
    assert loss.state_dict() == {}
    assert list(loss.parameters()) == []
    whole = nn.ModuleDict(dict(student=student, teacher=teacher, loss=loss))
    assert not [key for key in whole.state_dict() if key.startswith('loss')]
    assert len(list(whole.parameters())) == \
        len(list(student.parameters())) + len(list(teacher.parameters()))


def test_warmup_and_loss_weight():
    student, teacher, s_feat, t_feat, labels = _setup()
    full = _built(student, teacher, loss='dkd')(s_feat, t_feat, labels)
    warm = _built(student, teacher, loss='dkd', warmup_epochs=20,
                  loss_weight=3.0)
    hub = MessageHub.get_current_instance()
    previous = hub.get_info('epoch', 0)
    try:
        hub.update_info('epoch', 4)  # runner epoch 4: the 5th of 20
        torch.testing.assert_close(warm(s_feat, t_feat, labels),
                                   3.0 * 5 / 20 * full)
        hub.update_info('epoch', 25)
        torch.testing.assert_close(warm(s_feat, t_feat, labels), 3.0 * full)
    finally:
        hub.update_info('epoch', previous)


def test_builds_from_the_root_registry():
    loss = MODELS.build(dict(type='SDDLoss', scales=[1, 2, 4], loss='dkd'))
    assert isinstance(loss, SDDLoss) and loss.num_regions == 21


def test_dkd_per_sample_weight():
    torch.manual_seed(0)
    z_s = torch.randn(4, NUM_CLASSES, dtype=torch.float64)
    z_t = torch.randn(4, NUM_CLASSES, dtype=torch.float64)
    labels = torch.tensor([0, 3, 4, 1])
    weight = torch.tensor([1.0, 2.0, 0.5, 0.0], dtype=torch.float64)
    value = DKDLoss(alpha=0.5, beta=2.0, temperature=2.0)(
        z_s, z_t, labels, avg_factor=7, weight=weight)
    expected = sum(w * _ref_dkd(z_s[i], z_t[i], int(labels[i]), 2.0, 0.5, 2.0)
                   for i, w in enumerate(weight)) / 7
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('kwargs, match', [
    (dict(scales=(2, 4)), 'scales'),
    (dict(scales=(1, 3)), 'scales'),
    (dict(scales=(1, 1, 2)), 'scales'),
    (dict(scales=()), 'scales'),
    (dict(temperature=0.0), 'temperature'),
    (dict(temperature=-1.0), 'temperature'),
    (dict(loss='nkd'), 'loss'),
    (dict(warmup_epochs=-1), 'warmup_epochs'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SDDLoss(**kwargs)


def test_missing_classifier_path_names_it():
    student, teacher, *_ = _setup()
    with pytest.raises(ValueError, match='head.cls'):
        SDDLoss(teacher_classifier='head.cls').link_models(student, teacher)


def test_class_counts_that_differ():
    student = TinyClassifier(8, num_classes=5)
    teacher = TinyClassifier(8, num_classes=7)
    with pytest.raises(ValueError, match='5 classes.*7'):
        SDDLoss().link_models(student, teacher)


def test_bad_inputs():
    student, teacher, s_feat, t_feat, labels = _setup()
    with pytest.raises(RuntimeError, match='link_models'):
        SDDLoss()(s_feat, t_feat, labels)
    loss = _built(student, teacher)
    with pytest.raises(ValueError, match='student classifier "head.fc"'):
        loss(s_feat[:, :4], t_feat, labels)
    with pytest.raises(ValueError, match='teacher classifier "head.fc"'):
        loss(s_feat, t_feat[:, :4], labels)
    with pytest.raises(ValueError, match='labels'):
        loss(s_feat, t_feat, labels[:2])
    with pytest.raises(ValueError, match='feature maps'):
        loss(s_feat, t_feat[:2], labels)
    with pytest.raises(ValueError, match='feature maps'):
        loss(s_feat.mean(dim=3), t_feat, labels)
