# Copyright (c) mmkd_plugin contributors.
"""Quality-focal classification distillation for sigmoid detectors.

The classification KD of BCKD: Yang et al., "Bridging Cross-task Protocol
Inconsistency for Distillation in Dense Object Detection", ICCV 2023.
https://arxiv.org/abs/2308.14286

The same loss (with beta 1) distils CrossKD's classification predictions:
Wang et al., "CrossKD: Cross-Head Knowledge Distillation for Object
Detection", CVPR 2024. https://arxiv.org/abs/2306.11369

Its form is the Quality Focal Loss of Li et al., "Generalized Focal Loss",
NeurIPS 2020 (https://arxiv.org/abs/2006.04388), with the teacher's score as
the soft target of every class.
"""
from typing import Optional, Union

import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .precision import full_precision


def check_logit_maps(loss_name: str, student_logits: Tensor,
                     teacher_logits: Tensor, weight: Optional[Tensor]) -> None:
    """Raise a ValueError naming the shapes unless they fit together.

    Args:
        loss_name (str): Name of the calling loss, used in the message.
        student_logits (Tensor): Student logits (..., C).
        teacher_logits (Tensor): Teacher logits, same shape.
        weight (Tensor, optional): Per-location (...) or per-element
            (..., C) weights.
    """
    s_shape, t_shape = tuple(student_logits.shape), tuple(teacher_logits.shape)
    if s_shape != t_shape or student_logits.dim() < 1:
        raise ValueError(
            f'{loss_name} expects student and teacher logits of the same '
            f'(..., C) shape, got student {s_shape} and teacher {t_shape}.')
    if weight is not None and tuple(
            weight.shape) not in (s_shape, s_shape[:-1]):
        raise ValueError(
            f'{loss_name}: weight must be per location {s_shape[:-1]} or '
            f'per element {s_shape}, got {tuple(weight.shape)}.')


@MODELS.register_module()
class QualityFocalKDLoss(nn.Module):
    """Binary (per-class sigmoid) distillation, focused by the score gap.

    Every class of every location is its own binary task whose soft target
    is the teacher's score ``q = sigmoid(z_T)`` (detached), with the
    student's score ``p = sigmoid(z_S)``::

        l[i, c] = BCE(p[i, c], q[i, c]) * |p[i, c] - q[i, c]|^beta
        loss = loss_weight * sum_{i, c} w[i, c] * l[i, c] / avg_factor

    with ``BCE(p, q) = -(q log p + (1 - q) log(1 - p))`` (computed from the
    logits, numerically stable). The focusing factor ``|p - q|^beta`` is
    not detached: gradients flow through both factors, as in the papers.
    ``w`` is an optional per-location (broadcast over the classes) or
    per-element weight; without ``avg_factor`` the weighted sum is
    returned (the caller passes e.g. the number of positives averaged over
    processes, already clamped to at least 1). Computes in float32 with
    autocast disabled (float64 inputs stay float64). No gradient flows into
    the teacher logits.

    Args:
        beta (float): Exponent of the focusing factor. Defaults to 1.
        loss_weight (float): Loss weight. Defaults to 1.
    """

    def __init__(self, beta: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(
                f'QualityFocalKDLoss: beta must be >= 0, got {beta}.')
        self.beta = beta
        self.loss_weight = loss_weight

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
        """Compute the loss.

        Args:
            student_logits (Tensor): Student class logits (..., C), e.g.
                (L, C) for L locations.
            teacher_logits (Tensor): Teacher class logits, same shape.
            weight (Tensor, optional): Weights of shape (...) per location
                or (..., C) per element. Defaults to all ones.
            avg_factor (float | Tensor, optional): Divisor of the weighted
                sum. Defaults to None (the sum).

        Returns:
            Tensor: Scalar loss.
        """
        check_logit_maps('QualityFocalKDLoss', student_logits, teacher_logits,
                         weight)
        with full_precision(student_logits) as dtype:
            z_s = student_logits.to(dtype)
            q = teacher_logits.detach().to(dtype).sigmoid()
            bce = F.binary_cross_entropy_with_logits(z_s, q, reduction='none')
            focus = (z_s.sigmoid() - q).abs()
            if self.beta != 1:  # pow(1) would cost a kernel each way
                focus = focus.pow(self.beta)
            loss = bce * focus
            if weight is not None:
                weight = weight.to(dtype)
                if weight.dim() < loss.dim():
                    weight = weight.unsqueeze(-1)
                loss = loss * weight
            total = self.loss_weight * loss.sum()
            if avg_factor is not None:
                total = total / avg_factor
        return total
