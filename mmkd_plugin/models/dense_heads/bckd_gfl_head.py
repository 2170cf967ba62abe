# Copyright (c) mmkd_plugin contributors.
"""GFL head with BCKD's classification and localization distillation.

Yang et al., "Bridging Cross-task Protocol Inconsistency for Distillation
in Dense Object Detection", ICCV 2023. https://arxiv.org/abs/2308.14286
"""
from typing import Dict, List, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, reduce_mean
from torch import Tensor

from ..losses.precision import full_precision
from .ld_gfl_head import LDGFLHead
from .level_layout import (flat_targets, flatten_levels, per_level,
                           spread_levels)

_BCKD_KEYS = ('loss_bckd_cls', 'loss_bckd_bbox')


@MODELS.register_module()
class BCKDGFLHead(LDGFLHead):
    """GFL head with BCKD's distillation terms, optionally plus LD's.

    Use it as the student's ``bbox_head`` inside a ``DistillationDetector``
    whose teacher has a GFL head with the same strides, anchors,
    ``reg_max`` and classes (checked when the detector is built, by
    :meth:`LDGFLHead.link_teacher` and here). The teacher head runs on the
    teacher's neck features; GFL's own losses are untouched. With the
    student's own ATSS assignment (``label_weights``: 1 for positives and
    negatives, 0 for ignored and invalid locations) BCKD adds, over **all**
    locations of every FPN level:

    - ``loss_bckd_cls`` (binary classification distillation):
      ``loss_bckd_cls(s, t, weight=label_weights, avg_factor=N_pos)`` on the
      student's and the teacher's class logits, by default a
      :class:`QualityFocalKDLoss` with beta 1, weight 1, i.e.
      ``sum_{loc, c} lw * BCE(p, q) * |p - q| / N_pos``.
    - ``loss_bckd_bbox`` (IoU-based localization distillation): boxes
      decoded from both heads' distributions at every location (per side
      the expectation ``sum_i softmax(z)_i * i`` over the ``reg_max + 1``
      bins, around the anchor centre, in stride units) compared by
      ``loss_bckd_bbox(b_S, b_T, weight=v, avg_factor=N_pos)``, by default
      a :class:`GIoUKDLoss` (``1 - GIoU``, eps 1e-6) with weight 4, where
      ``v = max_c |sigmoid(t_c) - sigmoid(s_c)|`` (detached) times
      ``label_weights``. Both boxes of a location are placed around the
      origin instead of the anchor centre: GIoU (like every loss that
      compares two boxes' geometry) does not change when both move by the
      same amount, so the values are the same without fetching anchors.

    ``N_pos`` is the number of positive locations in the batch, averaged
    over processes, at least 1.

    Quirk kept from the authors' code (``bckd_skip_levels_without_pos=True``,
    the default): both terms are computed only on the FPN levels that hold
    at least one positive location in this process's batch; a level
    without positives adds no BCKD at all, although both terms also cover
    negatives. This looks like a side effect of where the terms sit in
    their per-level loss rather than a design choice, so
    ``bckd_skip_levels_without_pos=False`` counts every level.

    The LD terms of :class:`LDGFLHead` (``loss_ld``, ``loss_ld_vlr``,
    ``loss_kd_cls``) are off by default and can be switched on in the same
    head; each term is computed as it is alone. At least one term of
    either method must be on.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Input channels.
        loss_bckd_cls (dict, optional): Classification KD config, logged as
            ``loss_bckd_cls``; None turns it off. Defaults to
            ``QualityFocalKDLoss(beta=1, loss_weight=1)``.
        loss_bckd_bbox (dict, optional): Localization KD config, logged as
            ``loss_bckd_bbox``; None turns it off. Defaults to
            ``GIoUKDLoss(eps=1e-6, loss_weight=4)``.
        bckd_skip_levels_without_pos (bool): Leave out the levels without
            positives (the authors' code). Defaults to True.
        loss_ld (dict, optional): :class:`LDGFLHead`'s main LD. Defaults to
            None (off).
        **kwargs: Other :class:`LDGFLHead` and :class:`GFLHead` arguments.
    """

    _needs_ld_term = False

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss_bckd_cls: OptConfigType = dict(type='QualityFocalKDLoss',
                                                     beta=1.0,
                                                     loss_weight=1.0),
                 loss_bckd_bbox: OptConfigType = dict(type='GIoUKDLoss',
                                                      eps=1e-6,
                                                      loss_weight=4.0),
                 bckd_skip_levels_without_pos: bool = True,
                 loss_ld: OptConfigType = None,
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes,
                         in_channels=in_channels,
                         loss_ld=loss_ld,
                         **kwargs)
        self.loss_bckd_cls = MODELS.build(
            loss_bckd_cls) if loss_bckd_cls else None
        self.loss_bckd_bbox = MODELS.build(
            loss_bckd_bbox) if loss_bckd_bbox else None
        self.bckd_skip_levels_without_pos = bckd_skip_levels_without_pos
        if not self.distill_loss_keys():
            raise ValueError(
                'BCKDGFLHead: every distillation term (loss_bckd_cls, '
                'loss_bckd_bbox, loss_ld, loss_ld_vlr, loss_kd_cls) is None; '
                'use GFLHead for no head distillation.')

    def _bckd_keys(self) -> List[str]:
        """list[str]: The enabled BCKD terms' log keys."""
        return [name for name in _BCKD_KEYS if getattr(self, name) is not None]

    def distill_loss_keys(self) -> List[str]:
        """list[str]: The enabled LD terms, then the enabled ones of
        ``loss_bckd_cls`` and ``loss_bckd_bbox``."""
        return super().distill_loss_keys() + self._bckd_keys()

    def link_teacher(self, teacher) -> None:
        """Check the teacher as :meth:`LDGFLHead.link_teacher` does (a GFL
        head with the same ``reg_max`` and anchors), and its classes.

        Raises:
            ValueError: As :meth:`LDGFLHead.link_teacher`, or the BCKD terms
                are on and the teacher's class count differs.
        """
        super().link_teacher(teacher)
        t_channels = teacher.bbox_head.cls_out_channels
        if self._bckd_keys() and t_channels != self.cls_out_channels:
            raise ValueError(
                'BCKDGFLHead: BCKD compares class scores one to one but the '
                f'student has {self.cls_out_channels} class channels and the '
                f'teacher {t_channels}.')

    def _distill_losses(
            self, cls_scores: List[Tensor], bbox_preds: List[Tensor],
            t_cls_scores: List[Tensor], t_bbox_preds: List[Tensor],
            ld_targets: Dict[str, List[Tensor]]) -> Dict[str, Tensor]:
        """The enabled LD terms (as :class:`LDGFLHead` computes them) and
        BCKD terms.

        Args:
            ld_targets (dict[str, list[Tensor]]): Per level: GFL's
                ``'labels'`` and ``'label_weights'`` (N, A_l) (and what
                the LD terms read).
        """
        losses = {}
        if super().distill_loss_keys():
            losses.update(super()._distill_losses(cls_scores, bbox_preds,
                                                  t_cls_scores, t_bbox_preds,
                                                  ld_targets))
        if self._bckd_keys():
            losses.update(
                self._bckd_losses(cls_scores, bbox_preds, t_cls_scores,
                                  t_bbox_preds, ld_targets))
        return losses

    def _bckd_losses(self, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                     t_cls_scores: List[Tensor], t_bbox_preds: List[Tensor],
                     targets: Dict[str, List[Tensor]]) -> Dict[str, Tensor]:
        """BCKD's terms over all levels at once (see class doc)."""
        weight, num_pos = self._bckd_location_weights(
            targets['labels'], targets['label_weights'])
        s_cls = flatten_levels(cls_scores, self.cls_out_channels)
        t_cls = flatten_levels(t_cls_scores, self.cls_out_channels)
        losses = {}
        if self.loss_bckd_cls is not None:
            losses['loss_bckd_cls'] = self.loss_bckd_cls(
                s_cls, t_cls, weight=weight, avg_factor=num_pos)
        if self.loss_bckd_bbox is not None:
            with full_precision(s_cls) as dtype:
                score_gap = (t_cls.detach().to(dtype).sigmoid() -
                             s_cls.detach().to(dtype).sigmoid()).abs()
                box_weight = score_gap.max(dim=1).values * weight
            s_boxes, t_boxes = self._decode_boxes(bbox_preds, t_bbox_preds)
            losses['loss_bckd_bbox'] = self.loss_bckd_bbox(
                s_boxes, t_boxes, weight=box_weight, avg_factor=num_pos)
        return losses

    def _bckd_location_weights(
            self, labels: List[Tensor],
            label_weights: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Location weights of both terms and their normaliser, computed on
        the flat layout of all levels.

        Args:
            labels (list[Tensor]): GFL's labels per level (N, A_l).
            label_weights (list[Tensor]): GFL's label weights per level.

        Returns:
            tuple[Tensor, Tensor]: The label weights (L, ), flattened in
            the order of :func:`flatten_levels`, zeroed on the levels
            without positives if :attr:`bckd_skip_levels_without_pos`;
            and ``N_pos``, the positives averaged over processes, at
            least 1.
        """
        num_images, sizes = labels[0].shape[0], [lv.shape[1] for lv in labels]
        positives = flat_targets(labels, num_images)
        positives = (positives >= 0) & (positives < self.num_classes)
        weights = flat_targets(label_weights, num_images)
        if self.bckd_skip_levels_without_pos:
            level_kept = [pos.any() for pos in per_level(positives, sizes)]
            weights = weights * spread_levels(level_kept, sizes, num_images)
        count = positives.sum().float()
        return weights, reduce_mean(count).clamp(min=1)

    def _decode_boxes(self, bbox_preds: List[Tensor],
                      t_bbox_preds: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Student and teacher boxes (L, 4) at every location, in stride
        units, decoded from the distributions around the origin (see the
        class doc), in the order of :func:`flatten_levels`.

        Args:
            bbox_preds (list[Tensor]): Student distributions per level.
            t_bbox_preds (list[Tensor]): Teacher distributions per level.
        """
        bins = self.reg_max + 1
        s_reg = flatten_levels(bbox_preds, 4 * bins)
        t_reg = flatten_levels(t_bbox_preds, 4 * bins)
        with full_precision(s_reg) as dtype:
            s_boxes = _boxes_around_origin(self.integral(s_reg.to(dtype)))
            with torch.no_grad():
                t_boxes = _boxes_around_origin(
                    self.integral(t_reg.to(dtype)))
        return s_boxes, t_boxes


def _boxes_around_origin(distances: Tensor) -> Tensor:
    """(x1, y1, x2, y2) boxes (L, 4) from the distances (L, 4) to their
    left, top, right and bottom sides from the origin."""
    return torch.cat([-distances[:, :2], distances[:, 2:]], dim=1)
