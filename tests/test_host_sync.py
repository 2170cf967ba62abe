# Copyright (c) mmkd_plugin contributors.
"""Distillation losses must not make the host wait for the device.

On a GPU, a tensor made from host data (``torch.tensor(x, device=...)``
copies from the host and waits), a data-dependent shape (``nonzero``) or a
value read back (``.item()``) each synchronise the host with the device.
These tests record, on the CPU, each such op that a loss's forward and
backward dispatch. The label range check of ``check_labels`` runs on the CPU
only, by design, so its reads are not counted. On a GPU,
``tools/benchmark.py --count-syncs`` counts the syncs of whole steps.
"""
import traceback
from typing import List

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from mmkd_plugin.models.dense_heads.crosskd_layouts import (
    _anchor_assignment, _fcos_assignment, centerness_targets)
from mmkd_plugin.models.losses import (DKDLoss, KDLoss, LDLoss, SDDLoss,
                                       SoftLabelLoss)

from .test_bckd import head_outputs as bckd_head_outputs
from .test_bckd import tiny_bckd_head

HOST_SYNC_OPS = ('aten.lift_fresh.default', 'aten._local_scalar_dense.default',
                 'aten.nonzero.default', 'aten.masked_select.default')
CPU_ONLY_CHECKS = ('check_labels', )


class HostSyncOps(TorchDispatchMode):
    """Records the dispatched ops that would synchronise on a GPU."""

    def __init__(self) -> None:
        super().__init__()
        self.found: List[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) in HOST_SYNC_OPS:
            stack = traceback.extract_stack()
            if not any(frame.name in CPU_ONLY_CHECKS for frame in stack):
                caller = next((f for f in reversed(stack)
                               if 'mmkd_plugin' in f.filename), stack[-2])
                self.found.append(f'{func} at {caller.filename}:'
                                  f'{caller.lineno}')
        return func(*args, **(kwargs or {}))


def _syncs(run) -> List[str]:
    with HostSyncOps() as recorder:
        run().backward()
    return recorder.found


def _logits(num_classes: int = 6):
    torch.manual_seed(0)
    student = torch.randn(4, num_classes, requires_grad=True)
    return student, torch.randn(4, num_classes), torch.tensor([0, 1, 2, 5])


@pytest.mark.parametrize('avg_factor', [3, 3.0])
def test_logit_losses_take_a_number_avg_factor_without_a_host_copy(
        avg_factor):
    student, teacher, labels = _logits()
    assert _syncs(lambda: KDLoss()(student, teacher,
                                   avg_factor=avg_factor)) == []
    assert _syncs(lambda: DKDLoss()(student, teacher, labels,
                                    avg_factor=avg_factor)) == []
    soft = teacher.softmax(dim=1)
    assert _syncs(lambda: SoftLabelLoss(temperature=4.0)(
        student, soft, avg_factor=avg_factor)) == []


@pytest.mark.parametrize('loss', ['kd', 'dkd'])
def test_sdd_loss_has_no_host_sync(loss):
    torch.manual_seed(0)
    student, teacher = nn.Module(), nn.Module()
    student.fc, teacher.fc = nn.Linear(8, 6), nn.Linear(8, 6)
    sdd = SDDLoss(loss=loss, student_classifier='fc',
                  teacher_classifier='fc')
    sdd.link_models(student, teacher)
    s_feat = torch.randn(2, 8, 4, 4, requires_grad=True)
    t_feat, labels = torch.randn(2, 8, 4, 4), torch.tensor([1, 4])
    assert _syncs(lambda: sdd(s_feat, t_feat, labels)) == []


def test_ld_loss_takes_a_number_num_pos_without_a_host_copy():
    torch.manual_seed(0)
    student = torch.randn(5, 4, 17, requires_grad=True)
    teacher = torch.randn(5, 4, 17)
    loss = LDLoss(normalize='num_pos')
    assert _syncs(lambda: loss(student, teacher, num_pos=2.0)) == []


def test_crosskd_anchor_assignment_makes_no_host_copy():
    labels = [torch.tensor([[0, 3, 6]])]
    label_weights = [torch.ones(1, 3)]
    targets = (labels, label_weights, None, None, 2)
    with HostSyncOps() as recorder:
        assignment = _anchor_assignment(targets, 1, all_reduce=True)
    assert recorder.found == []
    assert float(assignment.avg_factor) == 2.0


def test_ld_and_bckd_head_terms_make_no_host_sync():
    """Every LD term (positives, VLR, per-level classification KD) and both
    BCKD terms weight all locations instead of selecting some (nonzero)."""
    head = tiny_bckd_head(
        loss_ld=dict(type='LDLoss'),
        loss_ld_vlr=dict(type='LDLoss', normalize='num_pos'),
        loss_kd_cls=dict(type='KDLoss', temperature=2.0))
    s_cls, s_reg, t_cls, t_reg, labels, label_weights = bckd_head_outputs(3)
    vlr_weights = [(weights * 0.5).reshape(weights.shape)
                   for weights in label_weights]
    targets = dict(labels=labels, label_weights=label_weights,
                   vlr_weights=vlr_weights)
    with HostSyncOps() as recorder:
        losses = head._distill_losses(s_cls, s_reg, t_cls, t_reg, targets)
        sum(losses.values()).backward()
    assert sorted(losses) == ['loss_bckd_bbox', 'loss_bckd_cls', 'loss_kd_cls',
                              'loss_ld', 'loss_ld_vlr']
    assert recorder.found == []


def test_crosskd_fcos_assignment_makes_no_host_sync():
    """FCOS's KD normaliser (the positives' centerness targets summed)
    without selecting the positives; the values are mmdet's."""
    from mmdet.models.dense_heads import FCOSHead
    head = FCOSHead(num_classes=3, in_channels=4)
    gen = torch.Generator().manual_seed(0)
    # 2 images, levels of 6 and 2 points; negatives may lie outside their
    # box (negative distances: NaN centerness, masked out)
    labels = [torch.tensor([0, 3, 3, 2, 3, 1, 3, 3, 0, 3, 3, 3]),
              torch.tensor([3, 2, 3, 3])]
    bbox_targets = [torch.rand(12, 4, generator=gen) * 8 - 2,
                    torch.rand(4, 4, generator=gen) * 8 - 2]
    for level_labels, level_targets in zip(labels, bbox_targets):
        positive = level_labels < 3
        level_targets[positive] = level_targets[positive].abs() + 0.1
    with HostSyncOps() as recorder:
        assignment = _fcos_assignment(head, (labels, bbox_targets), 2)
    assert recorder.found == []
    pos_targets = torch.cat(bbox_targets)[torch.cat(labels) < 3]
    expected = head.centerness_target(pos_targets)
    assert centerness_targets(torch.cat(bbox_targets)).isnan().any()
    torch.testing.assert_close(assignment.avg_factor, expected.sum())
