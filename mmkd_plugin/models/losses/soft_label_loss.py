# Copyright (c) mmkd_plugin contributors.
"""Soft cross-entropy to stored soft labels, optionally at a temperature.

The student loss of FKD (Shen and Xing, "A Fast Knowledge Distillation
Framework for Visual Recognition", ECCV 2022,
https://arxiv.org/abs/2112.01528): the labels are the teacher's stored
temperature-1 probabilities. A temperature T > 1 softens them as Hinton et
al.'s KD does ("Distilling the Knowledge in a Neural Network", 2015,
https://arxiv.org/abs/1503.02531): an extension, not in the FKD paper.
"""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from .kd_loss import sample_count
from .precision import full_precision


def soften(probs: Tensor, temperature: float) -> Tensor:
    """``probs ** (1 / T)`` renormalised per row: the softmax of the
    logits at temperature T when ``probs`` is the softmax at temperature 1.
    Zero probabilities stay zero.

    Args:
        probs (Tensor): Probabilities (B, C).
        temperature (float): T.

    Returns:
        Tensor: Softened probabilities (B, C).
    """
    if temperature == 1:
        return probs
    return torch.softmax(probs.log() / temperature, dim=-1)


@MODELS.register_module()
class SoftLabelLoss(nn.Module):
    """Soft cross-entropy of student logits to target distributions::

        q_T = q ** (1 / T) / sum_c q_c ** (1 / T)
        loss = loss_weight * T^2 / B * sum_b sum_c
               -q_T[b, c] * log softmax(z[b] / T)_c

    With T = 1 this is FKD's loss (mmpretrain's ``CrossEntropyLoss`` with
    ``use_soft=True``). For a target that is the teacher's full temperature-1
    softmax (an FKD store with top-k = C), ``q_T`` is the teacher's softmax at
    temperature T, so the loss differs from KD's ``T^2 KL`` only by the
    target's entropy, a constant: the same gradients. With top-k < C the
    other classes hold the spread rest of the mass, and ``q_T`` is an
    approximation. Computes in float32 with autocast off (float64 stays
    float64). Use as an mmpretrain head's ``loss``.

    Args:
        temperature (float): T. Defaults to 1 (FKD).
        loss_weight (float): Loss weight. Defaults to 1.
    """

    def __init__(self,
                 temperature: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'SoftLabelLoss: temperature must be positive, '
                             f'got {temperature}.')
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                **kwargs) -> Tensor:
        """Compute the loss.

        Args:
            cls_score (Tensor): Student logits (B, C).
            label (Tensor): Target distributions (B, C), e.g. the
                ``gt_score`` that ``FKDReplayCrop`` packs.
            weight (Tensor, optional): Per-sample weights (B, ).
            avg_factor (float | Tensor, optional): Divisor instead of B.

        Returns:
            Tensor: Scalar loss.
        """
        if cls_score.dim() != 2 or label.shape != cls_score.shape or \
                not label.is_floating_point():
            raise ValueError(
                f'SoftLabelLoss expects logits (B, C) and soft labels of the '
                f'same shape, got {tuple(cls_score.shape)} and '
                f'{label.dtype} {tuple(label.shape)}; a hard-label pipeline '
                f'needs CrossEntropyLoss instead.')
        temp = self.temperature
        with full_precision(cls_score) as dtype:
            target = soften(label.detach().to(dtype), temp)
            log_prob = torch.log_softmax(cls_score.to(dtype) / temp, dim=-1)
            per_sample = -(target * log_prob).sum(dim=-1)
            if weight is not None:
                per_sample = per_sample * weight.to(dtype)
            total = self.loss_weight * temp**2 * per_sample.sum()
            return total / sample_count(cls_score.shape[0], avg_factor, total)
