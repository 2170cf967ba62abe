# Copyright (c) mmkd_plugin contributors.
"""RoI head that distils the teacher's RoI classifier on the student's
sampled RoIs (KD or DKD on the (C + 1)-way logits).

Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022
(https://arxiv.org/abs/2203.08679), detection setting; Hinton et al.,
"Distilling the Knowledge in a Neural Network", 2015.
"""
import inspect
from typing import List, Tuple

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import ConfigType, reduce_mean
from torch import Tensor

from ..losses.dkd_loss import DKDLoss
from ..utils import TeacherLinkMixin

_LOG_NAMES = {'DKDLoss': 'dkd', 'KDLoss': 'kd'}


@MODELS.register_module()
class DistillRoIHead(TeacherLinkMixin, StandardRoIHead):
    """Standard RoI head plus logit distillation from the teacher's RoI head.

    Use it as the student's ``roi_head`` inside a ``DistillationDetector``
    whose teacher is a two-stage detector with a :class:`StandardRoIHead`
    (or subclass) of the same number of classes (checked at build time).
    In each training step, after the student has assigned and sampled its
    RoIs, the teacher's box branch (its ``bbox_roi_extractor``, shared head
    if any, and ``bbox_head``) runs on exactly those RoIs over the
    teacher's own neck features, without gradients. ``distill_loss``
    compares the (C + 1)-way classification logits (background included)
    of student and teacher over all sampled RoIs; :class:`DKDLoss` also
    gets the sampled labels (``num_classes`` for background). The result is
    logged as ``loss_dkd`` (DKDLoss), ``loss_kd`` (KDLoss) or
    ``loss_<distill_name>``.

    The loss is averaged over the sampled RoIs of the global batch: each
    process divides its sum by the RoI count averaged over processes
    (mmdet's ``reduce_mean``), so DDP's gradient averaging gives the mean
    over all RoIs even when the processes sample different numbers (for
    losses whose ``forward`` takes ``avg_factor``, as DKDLoss and KDLoss
    do; any other loss normalises itself).

    Args:
        distill_loss (dict): ``DKDLoss`` or ``KDLoss`` config. Defaults to
            DKD with the paper's detection setting (alpha 1, beta 0.25,
            T 1).
        distill_name (str, optional): Log key stem; defaults from the loss
            type (``dkd`` / ``kd``, else the lower-cased type).
        **kwargs: :class:`StandardRoIHead` arguments.
    """

    def __init__(self,
                 *args,
                 distill_loss: ConfigType = dict(
                     type='DKDLoss', alpha=1.0, beta=0.25, temperature=1.0),
                 distill_name: str = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.with_bbox:
            raise ValueError('DistillRoIHead needs a bbox_head.')
        self.distill_loss = MODELS.build(distill_loss)
        loss_type = distill_loss['type']
        if not isinstance(loss_type, str):
            loss_type = loss_type.__name__
        name = distill_name or _LOG_NAMES.get(
            loss_type,
            loss_type.split('.')[-1].replace('Loss', '').lower())
        self.distill_log_key = f'loss_{name}'
        self._needs_labels = isinstance(self.distill_loss, DKDLoss)
        self._takes_avg_factor = 'avg_factor' in inspect.signature(
            self.distill_loss.forward).parameters

    def distill_loss_keys(self) -> List[str]:
        """list[str]: ``[distill_log_key]``, e.g. ``['loss_dkd']``."""
        return [self.distill_log_key]

    def link_teacher(self, teacher) -> None:
        """Check that the teacher has a comparable RoI box classifier.

        Raises:
            ValueError: The teacher has no :class:`StandardRoIHead` with a
                bbox head, or a different number of classes or classifier
                width.
        """
        roi_head = getattr(teacher, 'roi_head', None)
        if not isinstance(roi_head, StandardRoIHead) or \
                not roi_head.with_bbox:
            found = 'missing' if roi_head is None else type(roi_head).__name__
            raise ValueError(
                'DistillRoIHead needs a two-stage teacher with a '
                'StandardRoIHead (or subclass) that has a bbox_head; the '
                f'teacher is a {type(teacher).__name__} whose roi_head is '
                f'{found}.')
        student_head, teacher_head = self.bbox_head, roi_head.bbox_head
        if student_head.num_classes != teacher_head.num_classes:
            raise ValueError(
                'DistillRoIHead: num_classes differs: student '
                f'{student_head.num_classes}, teacher '
                f'{teacher_head.num_classes}.')
        for head, who in ((student_head, 'student'), (teacher_head,
                                                      'teacher')):
            if not getattr(head, 'with_cls', False) or \
                    getattr(head, 'custom_cls_channels', False):
                raise ValueError(
                    f'DistillRoIHead: the {who} bbox head '
                    f'({type(head).__name__}) does not give plain '
                    '(C + 1)-way softmax logits.')
        super().link_teacher(teacher)

    def teacher_cls_logits(self, rois: Tensor) -> Tensor:
        """The teacher's RoI classification logits on ``rois`` (float32).

        Runs the teacher's box branch as its ``_bbox_forward`` does, except
        that RoI pooling always runs in float32 outside autocast (mmcv's
        RoIAlign has no bfloat16 kernels); the shared head and bbox head run
        under the teacher's autocast.
        """
        roi_head = self.teacher.roi_head
        extractor = roi_head.bbox_roi_extractor
        device_type = rois.device.type
        feats = tuple(
            feat.float() for feat in self.teacher_feats[:extractor.num_inputs])
        with torch.no_grad(), torch.autocast(device_type, enabled=False):
            bbox_feats = extractor(feats, rois.float())
        with self.teacher_forward_context(device_type):
            if roi_head.with_shared_head:
                bbox_feats = roi_head.shared_head(bbox_feats)
            cls_score, _ = roi_head.bbox_head(bbox_feats)
        return cls_score.float()

    def bbox_loss(self, x: Tuple[Tensor],
                  sampling_results: List[SamplingResult]) -> dict:
        """The standard box losses plus the distillation loss, added to
        ``loss_bbox`` under :attr:`distill_log_key`."""
        bbox_results = super().bbox_loss(x, sampling_results)
        rois = bbox2roi([res.priors for res in sampling_results])
        student_logits = bbox_results['cls_score']
        teacher_logits = self.teacher_cls_logits(rois)
        extra = {}
        if self._takes_avg_factor:
            extra['avg_factor'] = global_mean_count(student_logits)
        if self._needs_labels:
            labels = self.bbox_head.get_targets(
                sampling_results, self.train_cfg, concat=True)[0]
            loss = self.distill_loss(student_logits, teacher_logits, labels,
                                     **extra)
        else:
            loss = self.distill_loss(student_logits, teacher_logits, **extra)
        bbox_results['loss_bbox'][self.distill_log_key] = loss
        return bbox_results


def global_mean_count(rows: Tensor) -> Tensor:
    """Number of rows of ``rows``, averaged over processes (a tensor on
    ``rows``' device, made by a fill, not a host-to-device copy)."""
    return reduce_mean(rows.new_full((), float(rows.shape[0])))
