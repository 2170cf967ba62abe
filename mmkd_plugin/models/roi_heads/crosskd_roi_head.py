# Copyright (c) mmkd_plugin contributors.
"""CrossKD for two-stage detectors: the teacher's RoI head on the student's
FPN features is the cross head.

Wang et al., "CrossKD: Cross-Head Knowledge Distillation for Object
Detection", CVPR 2024 (https://arxiv.org/abs/2306.11369); the two-stage
setting follows the facts gathered in the project's methods reference (no
published numbers; unverified against the authors' results).
"""
from typing import List, Optional, Tuple

import torch
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import ConfigType
from torch import Tensor

from ..utils import teacher_autocast
from .distill_roi_head import DistillRoIHead


def top_class_deltas_l1(cross_deltas: Tensor, teacher_deltas: Tensor,
                        teacher_logits: Tensor, num_classes: int) -> Tensor:
    """L1 between cross-head and teacher box deltas of the foreground class
    the teacher scores highest, weighted by that class's probability.

    ``p = softmax(teacher_logits)`` over the C + 1 columns (background
    last); per RoI ``c* = argmax_{c < C} p_c`` and ``w = p_{c*}``::

        loss = sum_r w_r * sum_j |x_r[c*, j] - t_r[c*, j]| / (4 * sum_r w_r)

    Class-agnostic deltas (R, 4) are used as they are. No gradient flows
    into the teacher's deltas or logits. Computes in the inputs' dtype.

    Args:
        cross_deltas (Tensor): Cross-head deltas (R, 4 * C) or (R, 4).
        teacher_deltas (Tensor): Teacher deltas, same shape.
        teacher_logits (Tensor): Teacher classification logits (R, C + 1).
        num_classes (int): C.

    Returns:
        Tensor: Scalar loss (0 without RoIs).
    """
    probs = teacher_logits.detach().softmax(dim=-1)[:, :num_classes]
    weight, top_class = probs.max(dim=-1)
    teacher_deltas = teacher_deltas.detach()
    if cross_deltas.shape[-1] != 4:
        rows = torch.arange(cross_deltas.shape[0], device=top_class.device)
        cross_deltas = cross_deltas.view(-1, num_classes, 4)[rows, top_class]
        teacher_deltas = teacher_deltas.view(-1, num_classes,
                                             4)[rows, top_class]
    total = (weight[:, None] * (cross_deltas - teacher_deltas).abs()).sum()
    weight_sum = 4 * weight.sum()
    return total / torch.where(weight_sum > 0, weight_sum,
                               weight_sum.new_ones(()))


@MODELS.register_module()
class CrossKDRoIHead(DistillRoIHead):
    """Standard RoI head with CrossKD on the student's sampled RoIs.

    In each training step, on exactly the RoIs the student sampled (its
    proposals, positives and negatives):

    - teacher: the teacher's box branch (RoI extractor, shared head, bbox
      head) on the teacher's neck features, without gradients;
    - cross head: the same teacher layers on the STUDENT's neck features
      (no feature alignment), with gradients into the student's neck and
      backbone, never into the teacher's parameters; the student's own
      RoI head sees only its detection losses.

    Losses: ``loss_crosskd_cls``, ``distill_loss`` (default
    ``KDLoss(temperature=3, loss_weight=0.5)``: softmax KL over the C + 1
    classes, summed over them, times T^2, divided by the number of sampled
    RoIs of this process) between cross-head and teacher logits; and
    ``loss_crosskd_reg``, ``reg_loss_weight`` (default 1) times
    :func:`top_class_deltas_l1` on the raw deltas.

    The student's neck must be as wide as the teacher's RoI extractor
    expects and use the same strides (checked at build time).

    Args:
        distill_loss (dict): Classification KD loss on the cross-head
            logits. Defaults to ``KDLoss`` with T 3 and weight 0.5.
        distill_name (str): Log key stem. Defaults to ``'crosskd_cls'``.
        reg_loss_weight (float): Weight of ``loss_crosskd_reg``; 0 turns
            it off. Defaults to 1.
        **kwargs: :class:`StandardRoIHead` arguments.
    """

    def __init__(self,
                 *args,
                 distill_loss: ConfigType = dict(
                     type='KDLoss', temperature=3.0, loss_weight=0.5),
                 distill_name: Optional[str] = 'crosskd_cls',
                 reg_loss_weight: float = 1.0,
                 **kwargs) -> None:
        super().__init__(
            *args, distill_loss=distill_loss, distill_name=distill_name,
            **kwargs)
        if self._needs_labels or not self._takes_avg_factor:
            raise ValueError(
                'CrossKDRoIHead: distill_loss must take (student_logits, '
                'teacher_logits, avg_factor=...), e.g. KDLoss.')
        self.reg_loss_weight = reg_loss_weight

    def distill_loss_keys(self) -> List[str]:
        """list[str]: ``loss_crosskd_cls`` (``distill_log_key``) and, with
        a non-zero ``reg_loss_weight``, ``loss_crosskd_reg``."""
        return [self.distill_log_key] + (['loss_crosskd_reg']
                                         if self.reg_loss_weight else [])

    def link_teacher(self, teacher) -> None:
        """:meth:`DistillRoIHead.link_teacher`'s checks, plus: the teacher's
        RoI extractor reads the student's features, so its channels and
        strides must be the student's.

        Raises:
            ValueError: Naming both RoI heads, on a mismatch.
        """
        super().link_teacher(teacher)
        s_ext = self.bbox_roi_extractor
        t_ext = teacher.roi_head.bbox_roi_extractor
        facts = [('RoI feature channels', s_ext.out_channels,
                  t_ext.out_channels),
                 ('featmap_strides', list(s_ext.featmap_strides),
                  list(t_ext.featmap_strides))]
        problems = [f'{what}: student {s}, teacher {t}'
                    for what, s, t in facts if s != t]
        if problems:
            raise ValueError(
                f'CrossKD (student roi_head {type(self).__name__}, teacher '
                f'roi_head {type(teacher.roi_head).__name__}): the '
                'teacher\'s RoI head reads the student\'s neck features: ' +
                '; '.join(problems) + '.')

    def _teacher_box_branch(self, feats: Tuple[Tensor, ...], rois: Tensor
                            ) -> Tuple[Tensor, Tensor]:
        """The teacher's box branch on ``feats`` (float32 RoI pooling
        outside autocast, as :meth:`teacher_cls_logits`); gradients flow
        into ``feats`` if they require them."""
        roi_head = self.teacher.roi_head
        extractor = roi_head.bbox_roi_extractor
        device_type = rois.device.type
        feats = tuple(feat.to(torch.promote_types(feat.dtype, torch.float32))
                      for feat in feats[:extractor.num_inputs])
        with torch.autocast(device_type, enabled=False):
            bbox_feats = extractor(feats, rois.to(feats[0].dtype))
        with teacher_autocast(device_type, self._teacher_autocast):
            if roi_head.with_shared_head:
                bbox_feats = roi_head.shared_head(bbox_feats)
            cls_score, bbox_pred = roi_head.bbox_head(bbox_feats)
        return cls_score.to(feats[0].dtype), bbox_pred.to(feats[0].dtype)

    def crosskd_losses(self, x: Tuple[Tensor], rois: Tensor) -> dict:
        """The CrossKD losses on ``rois`` (see the class doc).

        Args:
            x (tuple[Tensor]): The student's neck features.
            rois (Tensor): The student's sampled RoIs (R, 5).

        Returns:
            dict[str, Tensor]: The losses of :meth:`distill_loss_keys`.
        """
        with torch.no_grad():
            t_cls, t_reg = self._teacher_box_branch(self.teacher_feats, rois)
        x_cls, x_reg = self._teacher_box_branch(x, rois)
        losses = {
            self.distill_log_key:
            self.distill_loss(x_cls, t_cls,
                              avg_factor=x_cls.new_full(
                                  (), float(x_cls.shape[0])))
        }
        if self.reg_loss_weight:
            losses['loss_crosskd_reg'] = self.reg_loss_weight * \
                top_class_deltas_l1(x_reg, t_reg, t_cls,
                                    self.bbox_head.num_classes)
        return losses

    def bbox_loss(self, x: Tuple[Tensor],
                  sampling_results: List[SamplingResult]) -> dict:
        """The standard box losses plus the CrossKD losses, added to
        ``loss_bbox``."""
        bbox_results = super(DistillRoIHead, self).bbox_loss(
            x, sampling_results)
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results['loss_bbox'].update(self.crosskd_losses(x, rois))
        return bbox_results
