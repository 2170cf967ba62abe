# Copyright (c) mmkd_plugin contributors.
"""SoftAndHardLabelClsHead: soft labels and the true class in one loss.

The reference is written from the formula with plain exp / log and Python
loops, in float64, and shares no code with the library.
"""
import math
import os.path as osp

import pytest
import torch

pytest.importorskip('mmpretrain')
from mmengine.config import Config  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

import mmkd_plugin.models  # noqa: E402,F401

DTYPE = torch.float64
NUM_CLASSES, IN_CHANNELS, BATCH = 5, 6, 4
TEMPERATURE, HARD_WEIGHT = 4.0, 0.1


def build_head(**kwargs):
    cfg = dict(type='SoftAndHardLabelClsHead', num_classes=NUM_CLASSES,
               in_channels=IN_CHANNELS,
               loss=dict(type='SoftLabelLoss', temperature=TEMPERATURE,
                         loss_weight=1 - HARD_WEIGHT),
               hard_label_loss=dict(type='CrossEntropyLoss',
                                    loss_weight=HARD_WEIGHT))
    cfg.update(kwargs)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        head = MODELS.build(cfg).to(DTYPE)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head.fc.weight.copy_(
            torch.randn(head.fc.weight.shape, generator=gen) * 0.5)
    return head


def samples(classes, scores=None):
    out = []
    for i, cls in enumerate(classes):
        sample = DataSample().set_gt_label(cls)
        if scores is not None:
            sample.set_gt_score(scores[i])
        out.append(sample)
    return out


def log_softmax_row(z):
    top = max(z)
    log_sum = top + math.log(sum(math.exp(v - top) for v in z))
    return [v - log_sum for v in z]


def reference_loss(logits, classes, scores):
    """(1 - a) T^2 mean_b -sum_c q_T log softmax(z / T) + a mean_b
    -log softmax(z)_y, q_T = q^(1/T) renormalised."""
    total = 0.0
    for z, y, q in zip(logits.tolist(), classes, scores.tolist()):
        powered = [p**(1 / TEMPERATURE) for p in q]
        q_t = [p / sum(powered) for p in powered]
        soft = -sum(p * lp for p, lp in zip(
            q_t, log_softmax_row([v / TEMPERATURE for v in z])))
        hard = -log_softmax_row(z)[y]
        total += (1 - HARD_WEIGHT) * TEMPERATURE**2 * soft + \
            HARD_WEIGHT * hard
    return total / len(classes)


def test_loss_is_soft_plus_hard_term_in_value_and_gradient():
    gen = torch.Generator().manual_seed(0)
    head = build_head()
    feats = torch.randn(BATCH, IN_CHANNELS, generator=gen, dtype=DTYPE)
    scores = torch.rand(BATCH, NUM_CLASSES, generator=gen, dtype=DTYPE)
    scores = scores / scores.sum(1, keepdim=True)
    classes = [3, 0, 4, 3]

    feats.requires_grad_(True)
    losses = head.loss((feats, ), samples(classes, scores))
    assert set(losses) == {'loss', 'loss_hard'}
    total = losses['loss'] + losses['loss_hard']
    total.backward()

    weight, bias = head.fc.weight.detach(), head.fc.bias.detach()
    # The reference's gradient: finite differences of the loop formula.
    value = reference_loss(feats.detach() @ weight.T + bias, classes, scores)
    torch.testing.assert_close(total.item(), value, rtol=1e-12, atol=0)
    step = 1e-6
    numeric = torch.zeros_like(feats)
    for b in range(BATCH):
        for c in range(IN_CHANNELS):
            shifted = [feats.detach().clone() for _ in range(2)]
            shifted[0][b, c] += step
            shifted[1][b, c] -= step
            up, down = (reference_loss(x @ weight.T + bias, classes, scores)
                        for x in shifted)
            numeric[b, c] = (up - down) / (2 * step)
    # central differences in float64: error about 1e-9 at this step
    torch.testing.assert_close(feats.grad, numeric, rtol=1e-6, atol=1e-7)


def test_hard_term_changes_with_the_class_only():
    """The two terms read different fields: changing gt_label moves
    loss_hard and leaves the soft loss alone."""
    head = build_head()
    feats = torch.randn(2, IN_CHANNELS, dtype=DTYPE)
    scores = torch.full((2, NUM_CLASSES), 1 / NUM_CLASSES, dtype=DTYPE)
    one = head.loss((feats, ), samples([0, 1], scores))
    other = head.loss((feats, ), samples([2, 1], scores))
    torch.testing.assert_close(one['loss'], other['loss'])
    assert not torch.allclose(one['loss_hard'], other['loss_hard'])


def test_refuses_samples_without_soft_labels():
    head = build_head()
    feats = torch.randn(2, IN_CHANNELS, dtype=DTYPE)
    with pytest.raises(ValueError, match='needs a soft label'):
        head.loss((feats, ), samples([0, 1]))


def test_refuses_accuracy_on_soft_targets():
    with pytest.raises(ValueError, match='cal_acc'):
        build_head(cal_acc=True)


def test_digits_config_is_fkd_t4_with_kd_weights():
    """fkd-t4-ce is fkd-t4 with this head and the KD config's weights:
    the student's CE weight as the hard term, KD's weight on the soft one."""
    from tests.conftest import CONFIG_DIR
    fkd_dir = osp.join(CONFIG_DIR, 'classification', 'fkd')
    with_ce = Config.fromfile(
        osp.join(fkd_dir, 'fkd-t4-ce_resnet18-w4_digits.py'))
    tempered = Config.fromfile(
        osp.join(fkd_dir, 'fkd-t4_resnet18-w4_digits.py'))
    kd = Config.fromfile(osp.join(CONFIG_DIR, 'classification', 'digits',
                                  'kd_resnet18_resnet18-w4_digits.py'))
    head = with_ce.model.head
    assert head.pop('type') == 'SoftAndHardLabelClsHead'
    assert head.pop('hard_label_loss') == dict(
        type='CrossEntropyLoss', loss_weight=kd.model.student_loss_weight)
    kd_loss = kd.model.distill[0].loss
    assert head.loss == dict(type='SoftLabelLoss',
                             temperature=kd_loss.temperature,
                             loss_weight=kd_loss.loss_weight)
    head.pop('loss')
    tempered.model.head.pop('loss')
    assert tempered.model.head.pop('type') == 'LinearClsHead'
    assert with_ce.model == tempered.model
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler',
                'train_cfg'):
        assert with_ce[key] == tempered[key], key
