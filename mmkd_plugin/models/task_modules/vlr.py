# Copyright (c) mmkd_plugin contributors.
"""The valuable localization region (VLR) of Localization Distillation.

Zheng et al., "Localization Distillation for Dense Object Detection",
CVPR 2022. https://arxiv.org/abs/2102.12252

mmdet's ``ATSSAssigner.assign`` computes each gt's IoU threshold inline and
does not return it, so :func:`atss_iou_thresholds` recomputes it from the
assigner's own settings (``topk``, ``iou_calculator``, ``ignore_iof_thr``).
"""
from typing import Optional, Sequence

import torch
from mmdet.models.task_modules.assigners.atss_assigner import \
    bbox_center_distance
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

_INF = 1e8


def pairwise_diou(boxes1: Tensor,
                  boxes2: Tensor,
                  eps: float = 1e-6,
                  overlap: str = 'iou') -> Tensor:
    """Distance-IoU of every box pair: IoU - d^2 / c^2.

    ``d`` is the distance between the two centres and ``c`` the diagonal of
    the smallest box enclosing both (Zheng et al., AAAI 2020).

    Args:
        boxes1 (Tensor): Boxes (A, 4), ``xyxy``.
        boxes2 (Tensor): Boxes (G, 4), ``xyxy``.
        eps (float): Stabiliser of the IoU and of ``c^2``.
        overlap (str): ``'iou'`` for the DIoU of the definition, or
            ``'iof'``: the intersection over the area of ``boxes1`` in place
            of the IoU, as the LD authors' ``bbox_overlaps(mode='diou')``
            computes it (it divides by the first box's area, not the
            union).

    Returns:
        Tensor: DIoU matrix (A, G), in (-1, 1].
    """
    iou = bbox_overlaps(boxes1, boxes2, mode=overlap, eps=eps)
    centers1 = (boxes1[:, :2] + boxes1[:, 2:]) / 2
    centers2 = (boxes2[:, :2] + boxes2[:, 2:]) / 2
    center_dist2 = (centers1[:, None] - centers2[None]).pow(2).sum(-1)
    enclose_lt = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    enclose_rb = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    diag2 = (enclose_rb - enclose_lt).pow(2).sum(-1).clamp(min=eps)
    return iou - center_dist2 / diag2


def atss_iou_thresholds(priors: Tensor, num_level_priors: Sequence[int],
                        gt_bboxes: Tensor, overlaps: Tensor, topk: int,
                        ignore_mask: Optional[Tensor] = None) -> Tensor:
    """The IoU threshold ATSS computes for each gt box.

    As in ATSS: the ``topk`` priors of every level whose centres are
    closest to the gt centre are the candidates; threshold = mean + std
    (unbiased) of their IoUs with the gt. Priors in ``ignore_mask`` are
    pushed away from every gt first, as ATSS does.

    Args:
        priors (Tensor): Priors (A, 4) of all levels, level by level.
        num_level_priors (Sequence[int]): Priors per level.
        gt_bboxes (Tensor): Gt boxes (G, 4).
        overlaps (Tensor): IoU of priors and gts (A, G).
        topk (int): Candidates per level.
        ignore_mask (Tensor, optional): Bool (A, ) of ignored priors.

    Returns:
        Tensor: Thresholds (G, ).
    """
    distances = bbox_center_distance(gt_bboxes, priors)
    if ignore_mask is not None:
        distances[ignore_mask, :] = _INF
    candidates = []
    start = 0
    for count in num_level_priors:
        k = min(topk, count)
        level_idx = distances[start:start + count].topk(
            k, dim=0, largest=False).indices
        candidates.append(level_idx + start)
        start += count
    candidate_ious = overlaps.gather(0, torch.cat(candidates))
    return candidate_ious.mean(0) + candidate_ious.std(0)


def vlr_weights(priors: Tensor,
                num_level_priors: Sequence[int],
                gt_bboxes: Tensor,
                topk: int,
                iou_calculator,
                low_ratio: float = 0.25,
                ignore_bboxes: Optional[Tensor] = None,
                ignore_iof_thr: float = -1.0,
                diou_overlap: str = 'iou') -> Tensor:
    """Valuable-localization-region weight of every prior (0 outside).

    A prior is in the VLR of a gt when its DIoU with the gt lies in
    ``[low_ratio * thr, thr)``, ``thr`` being the gt's ATSS IoU threshold
    (:func:`atss_iou_thresholds`). All priors are considered, positives
    included, as in the reference. The weight of a VLR prior is its IoU
    with the VLR gt of highest IoU (the reference's choice).

    Args:
        priors (Tensor): Priors (A, 4) of all levels, level by level.
        num_level_priors (Sequence[int]): Priors per level.
        gt_bboxes (Tensor): Gt boxes (G, 4).
        topk (int): ATSS candidates per level.
        iou_calculator (callable): The assigner's IoU calculator.
        low_ratio (float): Lower DIoU bound as a fraction of the threshold.
            Defaults to 0.25.
        ignore_bboxes (Tensor, optional): Ignored gt boxes.
        ignore_iof_thr (float): The assigner's ``ignore_iof_thr``.
        diou_overlap (str): ``overlap`` of :func:`pairwise_diou`: ``'iou'``
            (the definition) or ``'iof'`` (the authors' code).

    Returns:
        Tensor: Weights (A, ), 0 for priors outside every VLR.
    """
    num_priors, num_gts = priors.size(0), gt_bboxes.size(0)
    if num_priors == 0 or num_gts == 0:
        return priors.new_zeros(num_priors)
    overlaps = iou_calculator(priors, gt_bboxes)
    ignore_mask = None
    if (ignore_iof_thr > 0 and ignore_bboxes is not None
            and ignore_bboxes.numel() > 0):
        ignore_mask = iou_calculator(
            priors, ignore_bboxes, mode='iof').max(dim=1).values \
            > ignore_iof_thr
    thresholds = atss_iou_thresholds(priors, num_level_priors, gt_bboxes,
                                     overlaps, topk, ignore_mask)
    diou = pairwise_diou(priors, gt_bboxes, overlap=diou_overlap)
    in_vlr = (diou >= low_ratio * thresholds) & (diou < thresholds)
    return overlaps.masked_fill(~in_vlr, 0).max(dim=1).values
