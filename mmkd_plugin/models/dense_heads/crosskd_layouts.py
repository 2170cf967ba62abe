# Copyright (c) mmkd_plugin contributors.
"""What differs between the dense heads CrossKD supports: one table entry
per head family (GFL, ATSS, FCOS, RetinaNet).

Each entry says how a head turns its tower outputs into predictions (its
predictor convs, per-level ``Scale`` and box activation), how the student's
assignment is read from its ``get_targets`` output (label weights and the
classification normaliser), and how the box predictions of the cross head
are distilled towards the teacher's. Wang et al., "CrossKD: Cross-Head
Knowledge Distillation for Object Detection", CVPR 2024.
https://arxiv.org/abs/2306.11369
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.models.dense_heads import ATSSHead, FCOSHead, GFLHead, RetinaHead
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import reduce_mean
from torch import Tensor

from ..utils import device_scalar
from .level_layout import flat_targets

Predictions = Tuple[Tensor, ...]  # one level: (cls, reg[, centerness])


@dataclass(frozen=True)
class KDAssignment:
    """The student's assignment, flattened over images and levels in the
    order of :func:`flatten_levels`.

    Attributes:
        labels (Tensor): (L, ) class index, ``num_classes`` = background.
        label_weights (Tensor, optional): (L, ) the assigner's weights
            (0 for ignored or outside priors); None where the head has none
            (FCOS).
        avg_factor (float | Tensor): Normaliser of the classification KD.
    """
    labels: Tensor
    label_weights: Optional[Tensor]
    avg_factor: Union[float, Tensor]


@dataclass(frozen=True)
class HeadLayout:
    """The head-specific parts of CrossKD for one head family.

    Attributes:
        name (str): Family name used in messages.
        family (type): mmdet base class of the family.
        default_idx (int): Default ``reused_teacher_head_idx``.
        predict (Callable): ``(head, cls_feat, reg_feat, level) ->
            predictions`` exactly as the head's ``forward_single`` in
            training mode.
        assignment (Callable): ``(head, targets, num_images) ->
            KDAssignment`` from the head's ``get_targets`` output.
        box_kd (Callable): ``(student_head, teacher_head, teacher_preds,
            cross_preds, assignment, priors) -> dict`` of box (and
            centerness) KD losses; predictions flattened to (L, K) per
            kind, priors (L, 4) anchors or (L, 2) points.
        default_losses (dict): Default loss configs by argument name.
    """
    name: str
    family: type
    default_idx: int
    predict: Callable
    assignment: Callable
    box_kd: Callable
    default_losses: Dict[str, Optional[dict]]


# --------------------------------------------------------------- predict
# The heads' forward_single casts the box output to float32 (against float16
# overflow); at_least_float32 does the same but keeps float64 (tests).
def at_least_float32(tensor: Tensor) -> Tensor:
    """float32 for half precision, else unchanged (float64 stays)."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def _gfl_predict(head: nn.Module, cls_feat: Tensor, reg_feat: Tensor,
                 level: int) -> Predictions:
    return (head.gfl_cls(cls_feat),
            at_least_float32(head.scales[level](head.gfl_reg(reg_feat))))


def _atss_predict(head: nn.Module, cls_feat: Tensor, reg_feat: Tensor,
                  level: int) -> Predictions:
    return (head.atss_cls(cls_feat),
            at_least_float32(head.scales[level](head.atss_reg(reg_feat))),
            head.atss_centerness(reg_feat))


def _retina_predict(head: nn.Module, cls_feat: Tensor, reg_feat: Tensor,
                    level: int) -> Predictions:
    return head.retina_cls(cls_feat), head.retina_reg(reg_feat)


def _fcos_predict(head: nn.Module, cls_feat: Tensor, reg_feat: Tensor,
                  level: int) -> Predictions:
    """Training-mode FCOS outputs: distances in stride units with
    ``norm_on_bbox`` (clamped at 0), else ``exp`` of the scaled output."""
    distances = at_least_float32(head.scales[level](head.conv_reg(reg_feat)))
    distances = distances.clamp(min=0) if head.norm_on_bbox else \
        distances.exp()
    centerness = head.conv_centerness(
        reg_feat if head.centerness_on_reg else cls_feat)
    return head.conv_cls(cls_feat), distances, centerness


# ------------------------------------------------------------ assignment
def _anchor_assignment(targets: tuple, num_images: int,
                       all_reduce: bool) -> KDAssignment:
    """From ``get_targets`` of GFL/ATSS (6 items, anchors first) or
    AnchorHead (5 items): avg_factor = positives summed over images (each
    image at least 1), averaged over processes when ``all_reduce`` (GFL,
    ATSS), else this process's count (RetinaNet)."""
    if len(targets) == 6:  # GFLHead / ATSSHead: anchors come first
        targets = targets[1:]
    labels, label_weights, _, _, avg_factor = targets[:5]
    labels = flat_targets(labels, num_images)
    label_weights = flat_targets(label_weights, num_images)
    if all_reduce:
        avg_factor = reduce_mean(
            device_scalar(avg_factor, labels, dtype=torch.float))
    return KDAssignment(labels, label_weights, avg_factor)


def _gfl_atss_assignment(head: nn.Module, targets: tuple,
                         num_images: int) -> KDAssignment:
    return _anchor_assignment(targets, num_images, all_reduce=True)


def _retina_assignment(head: nn.Module, targets: tuple,
                       num_images: int) -> KDAssignment:
    return _anchor_assignment(targets, num_images, all_reduce=False)


def _fcos_assignment(head: FCOSHead, targets: tuple,
                     num_images: int) -> KDAssignment:
    """FCOS: no label weights; avg_factor = the positives' centerness
    targets summed, averaged over processes, at least 1e-6 (FCOS's box-loss
    normaliser)."""
    labels_list, bbox_targets_list = targets
    labels = flat_targets(labels_list, num_images)
    bbox_targets = flat_targets(bbox_targets_list, num_images, (4, ))
    pos = (labels >= 0) & (labels < head.num_classes)
    centerness_sum = torch.where(pos, centerness_targets(bbox_targets),
                                 0).sum()
    avg_factor = reduce_mean(centerness_sum.detach()).clamp(min=1e-6)
    return KDAssignment(labels, None, avg_factor)


def centerness_targets(bbox_targets: Tensor) -> Tensor:
    """FCOS's centerness target of every location, from its distances
    (left, top, right, bottom) to its gt's sides: ``sqrt(min(l, r) /
    max(l, r) * min(t, b) / max(t, b))``.

    The values of mmdet's ``FCOSHead.centerness_target`` at the positives;
    elsewhere (a point outside its box) it may be NaN and must be masked
    out. Unlike mmdet's, it needs no selection of the positives and no
    list index, so the host never waits for the device.
    """
    left_right, top_bottom = bbox_targets[:, 0::2], bbox_targets[:, 1::2]
    return ((left_right.amin(-1) / left_right.amax(-1)) *
            (top_bottom.amin(-1) / top_bottom.amax(-1))).sqrt()


# ---------------------------------------------------------------- box KD
def max_score(cls_logits: Tensor) -> Tensor:
    """sigmoid of the largest class logit of every row (L, C) -> (L, )."""
    return cls_logits.max(dim=1).values.sigmoid()


def _gfl_box_kd(student_head: nn.Module, teacher_head: GFLHead,
                teacher_preds: List[Tensor], cross_preds: List[Tensor],
                assignment: KDAssignment, priors: Tensor) -> Dict[str, Tensor]:
    """KL between the box-side distributions (``loss_crosskd_bbox``, an
    ``LDLoss`` summing over the bins and dividing by 4), each location
    weighted by r = sigmoid(max teacher class logit), 0 where the label
    weight is 0, and the whole divided by the sum of r (this process)."""
    bins = teacher_head.reg_max + 1
    r = max_score(teacher_preds[0])
    r = torch.where(assignment.label_weights > 0, r, r.new_zeros(()))
    r_sum = r.sum()
    r = r / torch.where(r_sum > 0, r_sum, r_sum.new_ones(()))
    return dict(loss_crosskd_bbox=student_head.loss_crosskd_bbox(
        cross_preds[1].reshape(-1, 4, bins),
        teacher_preds[1].reshape(-1, 4, bins),
        weight=r))


def _decoded_box_kd(student_head: nn.Module, teacher_head: nn.Module,
                    teacher_preds: List[Tensor], cross_preds: List[Tensor],
                    assignment: KDAssignment, priors: Tensor) -> Tensor:
    """IoU-type loss between the boxes the teacher's coder decodes from the
    teacher's and the cross head's outputs, weighted by r =
    sigmoid(max teacher class logit) times the label weights (if any),
    / the classification KD's avg_factor."""
    coder = teacher_head.bbox_coder
    teacher_boxes = get_box_tensor(coder.decode(priors, teacher_preds[1]))
    cross_boxes = get_box_tensor(coder.decode(priors, cross_preds[1]))
    r = max_score(teacher_preds[0])
    if assignment.label_weights is not None:
        r = r * assignment.label_weights
    return student_head.loss_crosskd_bbox(
        cross_boxes, teacher_boxes, weight=r,
        avg_factor=assignment.avg_factor)


def _anchor_box_kd(*args) -> Dict[str, Tensor]:
    return dict(loss_crosskd_bbox=_decoded_box_kd(*args))


def _atss_box_kd(student_head: nn.Module, teacher_head: ATSSHead,
                 teacher_preds: List[Tensor], cross_preds: List[Tensor],
                 assignment: KDAssignment, priors: Tensor
                 ) -> Dict[str, Tensor]:
    """RetinaNet's box KD plus centerness KD on the student's positives:
    BCE-with-logits to sigmoid(teacher centerness), / avg_factor (by
    default a ``QualityFocalKDLoss`` with beta 0, which is that BCE and
    takes the teacher's logits). The loss is called as ``loss(cross (L, 1),
    teacher (L, 1), weight=positive (L, ), avg_factor=...)``: the positives
    as a 0/1 weight, so no host sync."""
    losses = _anchor_box_kd(student_head, teacher_head, teacher_preds,
                            cross_preds, assignment, priors)
    labels = assignment.labels
    positive = (labels >= 0) & (labels < student_head.num_classes)
    losses['loss_crosskd_centerness'] = student_head.loss_crosskd_centerness(
        cross_preds[2], teacher_preds[2],
        weight=positive.to(cross_preds[2].dtype),
        avg_factor=assignment.avg_factor)
    return losses


QFL_KD = dict(type='QualityFocalKDLoss', beta=1.0, loss_weight=1.0)

LAYOUTS = (
    HeadLayout(
        name='GFL', family=GFLHead, default_idx=3, predict=_gfl_predict,
        assignment=_gfl_atss_assignment, box_kd=_gfl_box_kd,
        default_losses=dict(
            loss_crosskd_cls=QFL_KD,
            loss_crosskd_bbox=dict(
                type='LDLoss', temperature=1.0, loss_weight=4.0,
                normalize='constant', divisor=4.0, bin_reduction='sum'),
            loss_crosskd_centerness=None)),
    HeadLayout(
        name='ATSS', family=ATSSHead, default_idx=3, predict=_atss_predict,
        assignment=_gfl_atss_assignment, box_kd=_atss_box_kd,
        default_losses=dict(
            loss_crosskd_cls=QFL_KD,
            loss_crosskd_bbox=dict(type='GIoUKDLoss', loss_weight=1.0),
            loss_crosskd_centerness=dict(QFL_KD, beta=0.0))),
    HeadLayout(
        name='FCOS', family=FCOSHead, default_idx=2, predict=_fcos_predict,
        assignment=_fcos_assignment, box_kd=_anchor_box_kd,
        default_losses=dict(
            loss_crosskd_cls=dict(QFL_KD, loss_weight=0.4),
            loss_crosskd_bbox=dict(type='IoULoss', loss_weight=0.75),
            loss_crosskd_centerness=None)),
    HeadLayout(
        name='RetinaNet', family=RetinaHead, default_idx=3,
        predict=_retina_predict, assignment=_retina_assignment,
        box_kd=_anchor_box_kd,
        default_losses=dict(
            loss_crosskd_cls=QFL_KD,
            loss_crosskd_bbox=dict(type='GIoUKDLoss', loss_weight=1.0),
            loss_crosskd_centerness=None)),
)


def layout_of(head: nn.Module) -> Optional[HeadLayout]:
    """The layout of ``head``'s family, or None if CrossKD has none."""
    for layout in LAYOUTS:
        if isinstance(head, layout.family):
            return layout
    return None
