# Copyright (c) mmkd_plugin contributors.
"""GFL head with Localization Distillation (LD) from a linked teacher.

Zheng et al., "Localization Distillation for Dense Object Detection",
CVPR 2022. https://arxiv.org/abs/2102.12252
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads import GFLHead
from mmdet.models.task_modules.assigners import ATSSAssigner
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.models.utils import images_to_levels, multi_apply, unmap
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import (InstanceList, OptConfigType, OptInstanceList,
                         reduce_mean)
from mmengine.structures import InstanceData
from torch import Tensor

from ..losses.kd_loss import KDLoss
from ..losses.ld_loss import LDLoss
from ..task_modules import vlr_weights
from ..utils import TeacherLinkMixin
from .level_layout import (flat_targets, flatten_levels, level_sizes,
                           per_level, spread_levels)

_CLS_KD_NORMALIZE = ('per_level', 'global')
_VLR_OVERLAPS = ('iof', 'iou')


def _prior_settings(generator) -> Dict[str, object]:
    """What makes two prior generators place the same priors."""

    def plain(value):
        return value.tolist() if isinstance(value, Tensor) else value

    return dict(
        type=type(generator).__name__,
        strides=[tuple(s) for s in getattr(generator, 'strides', [])],
        base_sizes=plain(getattr(generator, 'base_sizes', None)),
        scales=plain(getattr(generator, 'scales', None)),
        ratios=plain(getattr(generator, 'ratios', None)),
        center_offset=getattr(generator, 'center_offset', None),
        centers=plain(getattr(generator, 'centers', None)),
        scale_major=getattr(generator, 'scale_major', None))


@MODELS.register_module()
class LDGFLHead(TeacherLinkMixin, GFLHead):
    """GFL head that distils a linked GFL teacher head inside its loss.

    Use it as the student's ``bbox_head`` inside a ``DistillationDetector``
    whose teacher has a GFL head with the same strides, anchors and
    ``reg_max`` (checked when the detector is built). In every training
    step the teacher's ``bbox_head`` runs on the teacher's own neck
    features, so its FPN width may differ from the student's. The student's
    ordinary GFL losses are untouched; on top of them, with the student's
    own ATSS assignment:

    - ``loss_ld`` (main LD): :class:`LDLoss` between the student's and the
      teacher's box-side distributions on the student's positive locations,
      weighted by the student's max class score (sigmoid, detached).
    - ``loss_ld_vlr``: the same loss on the valuable localization region
      (VLR), computed per image exactly as the authors' public code does
      (:func:`mmkd_plugin.models.task_modules.vlr_weights`):

      1. ``thr[g]`` is the ATSS IoU threshold of gt ``g``, recomputed with
         the student assigner's settings: mean + std (unbiased) of the IoUs
         between ``g`` and its ATSS candidates, the ``topk`` anchors of
         each level whose centres are closest to ``g``'s centre. ATSS has
         one threshold per gt (its candidates span all levels), not one per
         level.
      2. An anchor (only anchors inside the image, as the assigner sees
         them) is in the VLR of ``g`` when ``vlr_low_ratio * thr[g] <=
         DIoU(anchor, g) < thr[g]``, DIoU being computed on the anchor box
         (overlap minus squared centre distance over squared diagonal of
         the enclosing box). The overlap is, as in the authors' code, the
         intersection over the anchor's area (their ``bbox_overlaps`` in
         ``'diou'`` mode divides by it instead of the union);
         ``vlr_diou_overlap='iou'`` uses the IoU of the DIoU definition.
         Positives are not excluded.
      3. Its weight is its IoU with the VLR gt of highest IoU; anchors in no
         VLR get 0 and are skipped.

      The authors' VLR loss divides by 16 rather than 4: set
      ``divisor=16`` in the loss config to match them.
    - ``loss_kd_cls``: classification KD on the positives between the
      student's and the teacher's class logits. With an :class:`LDLoss`
      (softmax KL averaged over the classes, as the reference's KD loss
      does) or with :class:`KDLoss` (KL summed over the classes).
      ``cls_kd_normalize`` sets the normaliser:

      - ``'per_level'`` (default, the authors' code): each FPN level's
        positives are averaged on their own and the level means are summed,
        ``sum_l sum_{i in pos_l} kl_i / |pos_l|`` (a level without
        positives adds 0). ``|pos_l|`` is averaged over processes (at least
        1), as mmdet's heads do with their positive counts; on one process
        it is the authors' per-level count. The loss's own ``normalize`` /
        ``divisor`` then only apply ``divisor`` (keep it 1).
      - ``'global'``: the sum over all levels' positives divided by their
        total count: ``LDLoss(normalize='num_pos')`` gets the count
        averaged over processes; ``KDLoss`` averages over the positives of
        its process.

    ``num_pos`` for the main and VLR ``LDLoss(normalize='num_pos')`` is the
    number of locations the term covers (positives, or VLR locations),
    averaged over processes.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Input channels.
        loss_ld (dict, optional): Main LD loss config, logged as
            ``loss_ld``. Defaults to ``LDLoss(temperature=10,
            loss_weight=0.25)``.
        loss_ld_vlr (dict, optional): VLR LD loss config, logged as
            ``loss_ld_vlr``. Defaults to None (off).
        loss_kd_cls (dict, optional): Classification KD config, logged as
            ``loss_kd_cls``: an :class:`LDLoss` or a :class:`KDLoss`.
            Defaults to None (off).
        cls_kd_normalize (str): ``'per_level'`` (the authors') or
            ``'global'``, see above. Defaults to ``'per_level'``.
        vlr_low_ratio (float): Lower DIoU bound of the VLR as a fraction of
            the ATSS threshold. Defaults to 0.25.
        vlr_diou_overlap (str): ``'iof'`` (default, the authors' code: the
            anchor's intersection with the gt over the anchor's area in
            place of the IoU in the DIoU) or ``'iou'`` (the DIoU as
            defined).
        **kwargs: :class:`GFLHead` arguments.
    """

    #: Whether one of the LD terms must be enabled; a subclass that adds
    #: terms of its own sets False and checks its own set instead.
    _needs_ld_term = True

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss_ld: OptConfigType = dict(
                     type='LDLoss', temperature=10.0, loss_weight=0.25),
                 loss_ld_vlr: OptConfigType = None,
                 loss_kd_cls: OptConfigType = None,
                 cls_kd_normalize: str = 'per_level',
                 vlr_low_ratio: float = 0.25,
                 vlr_diou_overlap: str = 'iof',
                 **kwargs) -> None:
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, **kwargs)
        self.loss_ld = MODELS.build(loss_ld) if loss_ld else None
        self.loss_ld_vlr = MODELS.build(loss_ld_vlr) if loss_ld_vlr else None
        self.loss_kd_cls = MODELS.build(loss_kd_cls) if loss_kd_cls else None
        ld_losses = (self.loss_ld, self.loss_ld_vlr, self.loss_kd_cls)
        if self._needs_ld_term and all(loss is None for loss in ld_losses):
            raise ValueError('LDGFLHead: loss_ld, loss_ld_vlr and loss_kd_cls '
                             'are all None; use GFLHead for no head '
                             'distillation.')
        if cls_kd_normalize not in _CLS_KD_NORMALIZE:
            raise ValueError('LDGFLHead: cls_kd_normalize must be one of '
                             f'{_CLS_KD_NORMALIZE}, got {cls_kd_normalize!r}.')
        if self.loss_kd_cls is not None and \
                not isinstance(self.loss_kd_cls, (LDLoss, KDLoss)):
            raise ValueError(
                'LDGFLHead: loss_kd_cls must be an LDLoss or a KDLoss, got '
                f'{type(self.loss_kd_cls).__name__}.')
        self.cls_kd_normalize = cls_kd_normalize
        if not 0 <= vlr_low_ratio < 1:
            raise ValueError('LDGFLHead: vlr_low_ratio must lie in [0, 1), '
                             f'got {vlr_low_ratio}.')
        self.vlr_low_ratio = vlr_low_ratio
        if vlr_diou_overlap not in _VLR_OVERLAPS:
            raise ValueError('LDGFLHead: vlr_diou_overlap must be one of '
                             f'{_VLR_OVERLAPS}, got {vlr_diou_overlap!r}.')
        self.vlr_diou_overlap = vlr_diou_overlap
        if self.loss_ld_vlr is not None and self.train_cfg and (
                not isinstance(self.assigner, ATSSAssigner)
                or self.assigner.alpha is not None):
            raise ValueError(
                'LDGFLHead: loss_ld_vlr needs the plain ATSSAssigner (its '
                'thresholds define the region), got '
                f'{type(self.assigner).__name__}.')

    # ------------------------------------------------------------ teacher
    def distill_loss_keys(self) -> List[str]:
        """list[str]: The enabled ones of ``loss_ld``, ``loss_ld_vlr`` and
        ``loss_kd_cls``."""
        return [
            name for name in ('loss_ld', 'loss_ld_vlr', 'loss_kd_cls')
            if getattr(self, name) is not None
        ]

    def link_teacher(self, teacher) -> None:
        """Check that the teacher has a compatible GFL head.

        Raises:
            ValueError: The teacher has no GFL-style ``bbox_head``, or its
                ``reg_max``, strides or anchor settings (or, for
                ``loss_kd_cls``, its class count) differ from the
                student's.
        """
        head = getattr(teacher, 'bbox_head', None)
        if not isinstance(head, GFLHead):
            raise ValueError(
                f'{type(self).__name__} needs a teacher with a GFL-style '
                'bbox_head (GFLHead or a subclass); the teacher is a '
                f'{type(teacher).__name__} whose bbox_head is '
                f'{type(head).__name__ if head is not None else "missing"}.')
        if head.reg_max != self.reg_max:
            raise ValueError(
                f'{type(self).__name__}: reg_max differs: student '
                f'{self.reg_max}, teacher {head.reg_max}; LD compares the '
                'two heads\' '
                'reg_max + 1 bins one to one.')
        student, teacher_settings = (_prior_settings(self.prior_generator),
                                     _prior_settings(head.prior_generator))
        diffs = [
            f'{key}: student {value}, teacher {teacher_settings[key]}'
            for key, value in student.items()
            if value != teacher_settings[key]
        ]
        if diffs:
            raise ValueError(
                f'{type(self).__name__}: the teacher\'s anchors differ '
                'from the student\'s (LD reads the teacher at the student\'s '
                'locations, so strides and anchor generators must '
                'match): ' + '; '.join(diffs) + '.')
        if (self.loss_kd_cls is not None
                and head.cls_out_channels != self.cls_out_channels):
            raise ValueError(
                'LDGFLHead: loss_kd_cls compares class logits but the '
                f'student has {self.cls_out_channels} class channels and '
                f'the teacher {head.cls_out_channels}.')
        super().link_teacher(teacher)

    def _teacher_forward(
        self, cls_scores: List[Tensor]
    ) -> Tuple[List[Tensor], List[Tensor]]:
        """The teacher head's outputs on the teacher's neck features."""
        with self.teacher_forward_context(cls_scores[0].device.type):
            t_cls_scores, t_bbox_preds = self.teacher.bbox_head(
                self.teacher_feats)
        if len(t_cls_scores) != len(cls_scores):
            raise ValueError(f'LDGFLHead: the student has {len(cls_scores)} '
                             f'levels, the teacher {len(t_cls_scores)}.')
        for level, (s_map, t_map) in enumerate(zip(cls_scores,
                                                   t_cls_scores)):
            if s_map.shape[0] != t_map.shape[0] or \
                    s_map.shape[2:] != t_map.shape[2:]:
                raise ValueError(
                    f'LDGFLHead: level {level}: student map '
                    f'{tuple(s_map.shape)} and teacher map '
                    f'{tuple(t_map.shape)} have different locations.')
        return ([t.float() for t in t_cls_scores],
                [t.float() for t in t_bbox_preds])

    # ------------------------------------------------------------ losses
    def loss_by_feat(
            self,
            cls_scores: List[Tensor],
            bbox_preds: List[Tensor],
            batch_gt_instances: InstanceList,
            batch_img_metas: List[dict],
            batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """GFL losses plus the distillation terms (see class doc).

        One assignment serves both: GFL's targets give the positives of
        the distillation terms (like mmdet's ``LDHead``, this method calls
        :meth:`get_targets` itself instead of :meth:`GFLHead.loss_by_feat`,
        which keeps them to itself).

        Returns:
            dict[str, Tensor]: GFL's ``loss_cls``, ``loss_bbox``,
            ``loss_dfl`` and the enabled ones of ``loss_ld``,
            ``loss_ld_vlr``, ``loss_kd_cls``.
        """
        t_cls_scores, t_bbox_preds = self._teacher_forward(cls_scores)
        anchor_list, valid_flag_list = self.get_anchors(
            [featmap.shape[-2:] for featmap in cls_scores],
            batch_img_metas,
            device=cls_scores[0].device)
        ld_targets = {}
        if self.loss_ld_vlr is not None:
            # Before get_targets, which concatenates anchor_list's levels.
            ld_targets['vlr_weights'] = self._vlr_weights(
                anchor_list, valid_flag_list, batch_gt_instances,
                batch_img_metas, batch_gt_instances_ignore)
        targets = self.get_targets(
            anchor_list,
            valid_flag_list,
            batch_gt_instances,
            batch_img_metas,
            batch_gt_instances_ignore=batch_gt_instances_ignore)
        ld_targets['labels'] = targets[1]
        ld_targets['label_weights'] = targets[2]
        losses = self._gfl_losses(cls_scores, bbox_preds, targets)
        losses.update(
            self._distill_losses(cls_scores, bbox_preds, t_cls_scores,
                                 t_bbox_preds, ld_targets))
        return losses

    def _gfl_losses(self, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                    targets: tuple) -> Dict[str, List[Tensor]]:
        """GFL's own losses from :meth:`get_targets`' output, normalised as
        :meth:`GFLHead.loss_by_feat` normalises them."""
        (anchor_list, labels_list, label_weights_list, bbox_targets_list, _,
         num_pos) = targets
        num_pos = reduce_mean(
            torch.tensor(num_pos, dtype=torch.float,
                         device=cls_scores[0].device)).item()
        losses_cls, losses_bbox, losses_dfl, quality_sums = multi_apply(
            self.loss_by_feat_single,
            anchor_list,
            cls_scores,
            bbox_preds,
            labels_list,
            label_weights_list,
            bbox_targets_list,
            self.prior_generator.strides,
            avg_factor=num_pos)
        quality_sum = reduce_mean(sum(quality_sums)).clamp_(min=1).item()
        return dict(
            loss_cls=losses_cls,
            loss_bbox=[loss / quality_sum for loss in losses_bbox],
            loss_dfl=[loss / quality_sum for loss in losses_dfl])

    def _vlr_weights(self, anchor_list: List[List[Tensor]],
                     valid_flag_list: List[List[Tensor]],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList
                     ) -> List[Tensor]:
        """VLR weights of every anchor, per level (N, A_l) like GFL's
        targets."""
        num_level_anchors = [anchors.size(0) for anchors in anchor_list[0]]
        ignores = batch_gt_instances_ignore or [None] * len(anchor_list)
        weights = [
            self._vlr_weights_single(
                torch.cat(anchors), torch.cat(flags), num_level_anchors,
                gt_instances, img_meta, gt_ignore)
            for anchors, flags, gt_instances, img_meta, gt_ignore in zip(
                anchor_list, valid_flag_list, batch_gt_instances,
                batch_img_metas, ignores)
        ]
        return images_to_levels(weights, num_level_anchors)

    def _vlr_weights_single(self, flat_anchors: Tensor, valid_flags: Tensor,
                            num_level_anchors: List[int],
                            gt_instances: InstanceData, img_meta: dict,
                            gt_instances_ignore: Optional[InstanceData]
                            ) -> Tensor:
        """VLR weights of one image's anchors (0 outside the image, as the
        assigner only sees anchors inside it)."""
        inside = anchor_inside_flags(flat_anchors, valid_flags,
                                     img_meta['img_shape'][:2],
                                     self.train_cfg['allowed_border'])
        ignore_bboxes = None if gt_instances_ignore is None else \
            get_box_tensor(gt_instances_ignore.bboxes)
        weights = vlr_weights(
            flat_anchors[inside],
            self.get_num_level_anchors_inside(num_level_anchors, inside),
            get_box_tensor(gt_instances.bboxes),
            topk=self.assigner.topk,
            iou_calculator=self.assigner.iou_calculator,
            low_ratio=self.vlr_low_ratio,
            diou_overlap=self.vlr_diou_overlap,
            ignore_bboxes=ignore_bboxes,
            ignore_iof_thr=self.assigner.ignore_iof_thr)
        return unmap(weights, flat_anchors.size(0), inside)

    def _distill_losses(self, cls_scores: List[Tensor],
                        bbox_preds: List[Tensor], t_cls_scores: List[Tensor],
                        t_bbox_preds: List[Tensor],
                        ld_targets: Dict[str, List[Tensor]]
                        ) -> Dict[str, Tensor]:
        """The enabled distillation terms over all levels at once.

        Args:
            ld_targets (dict[str, list[Tensor]]): Per level (N, A_l):
                ``'labels'`` and ``'label_weights'``, GFL's targets (the
                student's assignment), and, with ``loss_ld_vlr``,
                ``'vlr_weights'``.
        """
        bins = self.reg_max + 1
        s_cls = flatten_levels(cls_scores, self.cls_out_channels)
        t_cls = flatten_levels(t_cls_scores, self.cls_out_channels)
        s_reg = flatten_levels(bbox_preds, 4 * bins).reshape(-1, 4, bins)
        t_reg = flatten_levels(t_bbox_preds, 4 * bins).reshape(-1, 4, bins)
        num_images = cls_scores[0].shape[0]
        labels = flat_targets(ld_targets['labels'], num_images)
        # Masks rather than indices: selecting the positives would make the
        # host wait for the device (nonzero); the terms are sums, so weight
        # 0 at the other locations gives the same values.
        positives = ((labels >= 0) & (labels < self.num_classes)).float()
        num_pos = _global_count(positives)

        losses = {}
        if self.loss_ld is not None:
            score = s_cls.detach().sigmoid().max(dim=1).values
            losses['loss_ld'] = self.loss_ld(
                s_reg, t_reg, weight=score * positives, num_pos=num_pos)
        if self.loss_ld_vlr is not None:
            weights = flat_targets(ld_targets['vlr_weights'], num_images)
            losses['loss_ld_vlr'] = self.loss_ld_vlr(
                s_reg, t_reg, weight=weights,
                num_pos=_global_count((weights > 0).float()))
        if self.loss_kd_cls is not None:
            losses['loss_kd_cls'] = self._cls_kd_loss(
                s_cls, t_cls, positives, num_pos, level_sizes(cls_scores))
        return losses

    def _cls_kd_loss(self, s_logits: Tensor, t_logits: Tensor,
                     positives: Tensor, num_pos: Tensor,
                     sizes: List[int]) -> Tensor:
        """Classification KD on the positives, normalised as
        :attr:`cls_kd_normalize` says.

        Args:
            s_logits (Tensor): Student class logits (L, C) of all
                locations, in the order of :func:`flatten_levels`.
            t_logits (Tensor): Teacher class logits (L, C).
            positives (Tensor): 1 at the positive locations, else 0 (L, ).
            num_pos (Tensor): Positives of all levels, averaged over
                processes, at least 1.
            sizes (list[int]): Locations (H*W) of one image on each level.

        Returns:
            Tensor: Scalar loss.
        """
        if self.cls_kd_normalize == 'global':
            weight, normaliser = positives, num_pos
        else:
            counts = torch.stack(
                [level.sum() for level in per_level(positives, sizes)])
            counts = reduce_mean(counts).clamp(min=1)
            weight = positives * spread_levels(
                counts.reciprocal(), sizes, positives.numel() // sum(sizes))
            normaliser = 1.0
        if isinstance(self.loss_kd_cls, LDLoss):
            return self.loss_kd_cls(
                s_logits, t_logits, weight=weight, num_pos=normaliser)
        return self.loss_kd_cls(
            s_logits, t_logits, weight=weight, avg_factor=normaliser)


def _global_count(mask: Tensor) -> Tensor:
    """Sum of a 0/1 mask, averaged over processes, at least 1."""
    return reduce_mean(mask.sum()).clamp(min=1)
