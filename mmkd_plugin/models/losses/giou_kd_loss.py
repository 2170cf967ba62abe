# Copyright (c) mmkd_plugin contributors.
"""GIoU distillation between decoded student and teacher boxes.

The localization KD of BCKD: Yang et al., "Bridging Cross-task Protocol
Inconsistency for Distillation in Dense Object Detection", ICCV 2023.
https://arxiv.org/abs/2308.14286

GIoU from Rezatofighi et al., "Generalized Intersection over Union", CVPR
2019. https://arxiv.org/abs/1902.09630
"""
from typing import Optional, Union

import torch.nn as nn
import torch
from mmdet.registry import MODELS
from torch import Tensor

from .precision import full_precision


def check_box_pair(loss_name: str, student_boxes: Tensor,
                   teacher_boxes: Tensor, weight: Optional[Tensor]) -> None:
    """Raise a ValueError naming the shapes unless they fit together.

    Args:
        loss_name (str): Name of the calling loss, used in the message.
        student_boxes (Tensor): Student boxes (..., B, 4).
        teacher_boxes (Tensor): Teacher boxes, same shape.
        weight (Tensor, optional): Per-box weights (..., B).
    """
    s_shape, t_shape = tuple(student_boxes.shape), tuple(teacher_boxes.shape)
    if s_shape != t_shape or len(s_shape) < 2 or s_shape[-1] != 4:
        raise ValueError(
            f'{loss_name} expects student and teacher boxes of the same '
            f'(..., B, 4) shape, got student {s_shape} and teacher {t_shape}.')
    if weight is not None and tuple(weight.shape) != s_shape[:-1]:
        raise ValueError(f'{loss_name}: weight must have one value per box '
                         f'{s_shape[:-1]}, got {tuple(weight.shape)}.')


def aligned_giou(boxes: Tensor, other_boxes: Tensor, eps: float) -> Tensor:
    """GIoU of each box with the box at the same index.

    The values of mmdet's ``bbox_overlaps(..., mode='giou',
    is_aligned=True, eps=eps)``: ``eps`` floors the union and the enclosing
    area. Written here because mmdet's copies ``eps`` from the host at every
    call, which makes the host wait for the device.

    Args:
        boxes (Tensor): Boxes (..., 4), x1y1x2y2.
        other_boxes (Tensor): Boxes of the same shape.
        eps (float): Floor of the union and the enclosing area.

    Returns:
        Tensor: GIoU (...).
    """
    top_left, bottom_right = boxes[..., :2], boxes[..., 2:]
    other_top_left, other_bottom_right = other_boxes[..., :2], \
        other_boxes[..., 2:]
    area = (bottom_right - top_left).prod(-1)
    other_area = (other_bottom_right - other_top_left).prod(-1)
    overlap = (torch.min(bottom_right, other_bottom_right) -
               torch.max(top_left, other_top_left)).clamp(min=0).prod(-1)
    union = (area + other_area - overlap).clamp(min=eps)
    enclosing = (torch.max(bottom_right, other_bottom_right) -
                 torch.min(top_left, other_top_left)).clamp(min=0).prod(-1)
    enclosing = enclosing.clamp(min=eps)
    return overlap / union - (enclosing - union) / enclosing


@MODELS.register_module()
class GIoUKDLoss(nn.Module):
    """``1 - GIoU`` between student boxes and detached teacher boxes::

        loss = loss_weight * sum_i w[i] * (1 - GIoU(b_S[i], b_T[i]))
               / avg_factor

    GIoU is :func:`aligned_giou` (the values of mmdet's ``bbox_overlaps``
    with ``mode='giou'``, aligned), whose ``eps`` floors the union and the
    enclosing area. Without ``avg_factor``
    the weighted sum is returned. Boxes are (x1, y1, x2, y2) in any common
    unit (GIoU is scale invariant up to ``eps``). Computes in float32 with
    autocast disabled (float64 inputs stay float64). No gradient flows into
    the teacher boxes. Unlike mmdet's ``GIoULoss`` it never reads a value
    back to the host (no early return on all-zero weights).

    Args:
        eps (float): ``eps`` of the GIoU. Defaults to 1e-6.
        loss_weight (float): Loss weight. Defaults to 1.
    """

    def __init__(self, eps: float = 1e-6, loss_weight: float = 1.0) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f'GIoUKDLoss: eps must be positive, got {eps}.')
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self,
                student_boxes: Tensor,
                teacher_boxes: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
        """Compute the loss.

        Args:
            student_boxes (Tensor): Student boxes (..., B, 4), x1y1x2y2.
            teacher_boxes (Tensor): Teacher boxes, same shape.
            weight (Tensor, optional): Per-box weights (..., B). Defaults
                to all ones.
            avg_factor (float | Tensor, optional): Divisor of the weighted
                sum. Defaults to None (the sum).

        Returns:
            Tensor: Scalar loss.
        """
        check_box_pair('GIoUKDLoss', student_boxes, teacher_boxes, weight)
        with full_precision(student_boxes) as dtype:
            gious = aligned_giou(student_boxes.to(dtype),
                                 teacher_boxes.detach().to(dtype), self.eps)
            loss = 1 - gious
            if weight is not None:
                loss = loss * weight.to(dtype)
            total = self.loss_weight * loss.sum()
            if avg_factor is not None:
                total = total / avg_factor
        return total
