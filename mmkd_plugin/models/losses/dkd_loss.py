# Copyright (c) mmkd_plugin contributors.
"""Decoupled Knowledge Distillation (DKD).

Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022.
https://arxiv.org/abs/2203.08679

Builds on Hinton et al., "Distilling the Knowledge in a Neural Network",
2015 (https://arxiv.org/abs/1503.02531); optional logit standardisation from
Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024
(https://arxiv.org/abs/2403.01427).
"""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import warmup_factor
from .kd_loss import (call_temperature, check_labels, check_logits,
                      sample_count, standardize_logits,
                      temperature_weighted_sum)
from .precision import full_precision

# Subtracted from the (temperature-scaled) target logit to drop it from the
# non-target distribution, as in the reference implementation.
TARGET_MASK_VALUE = 1000.0


def _binary_log_probs(scaled_logits: Tensor, gt_mask: Tensor) -> Tensor:
    """log [p_t, 1 - p_t] of softmax(scaled_logits), computed stably."""
    log_all = torch.logsumexp(scaled_logits, dim=1, keepdim=True)
    log_target = (scaled_logits * gt_mask).sum(dim=1, keepdim=True)
    log_others = torch.logsumexp(
        scaled_logits.masked_fill(gt_mask, float('-inf')), dim=1,
        keepdim=True)
    return torch.cat([log_target, log_others], dim=1) - log_all


@MODELS.register_module()
class DKDLoss(nn.Module):
    """Decoupled KD: target-class KD plus non-target-class KD.

    With ``p = softmax(z / T)`` and ``t`` the label of a sample:

    - TCKD = T^2 / B * sum_b KL(b_T || b_S), ``b = [p_t, 1 - p_t]``;
    - NCKD = T^2 / B * sum_b KL(q_T || q_S), ``q = softmax(z / T - 1000 *
      onehot(t))``: the distribution over the non-target classes (the target
      logit is masked by subtracting 1000, as in the reference);
    - loss = loss_weight * (alpha * TCKD + beta * NCKD).

    Per sample, the classical KD loss decomposes as
    ``KD = TCKD + (1 - p_t^T) * NCKD`` (up to the negligible exp(-1000)
    mass of the masked target); DKD frees the NCKD weight from p_t^T.
    An empty batch gives 0. With ``logit_standardization=True`` both logit
    vectors are z-scored per sample before the division by T.
    A ``temperature`` tensor given to :meth:`forward` (a learnt one, as in
    CTKD) replaces T, globally or per sample.

    Classification defaults (alpha 1, beta 8, T 4); the paper uses alpha 1,
    beta 0.25, T 1 on the RoI classifier of two-stage detectors. On
    classification the paper warms the loss up linearly over 20 epochs
    (``warmup_epochs=20``): in epoch e (counted from 1) it is multiplied by
    ``min(e / warmup_epochs, 1)`` (:func:`warmup_factor`); detection uses
    none.

    Args:
        alpha (float): TCKD weight. Defaults to 1.
        beta (float): NCKD weight. Defaults to 8.
        temperature (float): Softmax temperature T. Defaults to 4.
        loss_weight (float): Overall weight. Defaults to 1.
        logit_standardization (bool): Z-score the logits first. Defaults to
            False.
        warmup_epochs (float): Length of the linear warm-up in epochs; 0
            means none. Defaults to 0.
    """

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 temperature: float = 4.0,
                 loss_weight: float = 1.0,
                 logit_standardization: bool = False,
                 warmup_epochs: float = 0.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f'DKDLoss: temperature must be positive, got {temperature}.')
        if warmup_epochs < 0:
            raise ValueError('DKDLoss: warmup_epochs must be >= 0, got '
                             f'{warmup_epochs}.')
        self.alpha = alpha
        self.beta = beta
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.logit_standardization = logit_standardization
        self.warmup_epochs = warmup_epochs

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                labels: Tensor,
                avg_factor: Optional[Union[float, Tensor]] = None,
                weight: Optional[Tensor] = None,
                temperature: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            student_logits (Tensor): Student logits (B, C).
            teacher_logits (Tensor): Teacher logits (B, C).
            labels (Tensor): Target classes (B, ), in [0, C).
            avg_factor (float | Tensor, optional): Divisor of the summed
                loss instead of B (clamped to at least 1), e.g. the sample
                count averaged over processes, so that DDP's gradient
                averaging gives the mean over the global batch.
            weight (Tensor, optional): Per-sample weights (B, ) of the
                ``alpha * TCKD + beta * NCKD`` terms. Defaults to all ones.
            temperature (Tensor, optional): Replaces ``self.temperature``
                for this call (a learnt one, as in CTKD): 0-d, or (B, ) for
                one per sample, each sample's TCKD and NCKD then computed at
                and scaled by its own T_b^2. Gradients flow into it; its
                positivity is the caller's to ensure.

        Returns:
            Tensor: Scalar loss.
        """
        check_logits('DKDLoss', student_logits, teacher_logits)
        num_samples, num_classes = student_logits.shape
        if num_classes < 2:
            raise ValueError('DKDLoss needs at least 2 classes, got '
                             f'logits of shape {tuple(student_logits.shape)}.')
        check_labels('DKDLoss', labels, student_logits)
        with full_precision(student_logits) as dtype:
            temp = self.temperature if temperature is None else \
                call_temperature('DKDLoss', temperature, num_samples, dtype)
            tckd, nckd = self._kl_terms(student_logits.to(dtype),
                                        teacher_logits.detach().to(dtype),
                                        labels, temp)
            per_sample = self.alpha * tckd + self.beta * nckd
            if weight is not None:
                per_sample = per_sample * weight.to(dtype)
        total = self.loss_weight * temperature_weighted_sum(per_sample, temp)
        total = total * warmup_factor(self.warmup_epochs, 'DKDLoss')
        return total / sample_count(num_samples, avg_factor, total)

    def _kl_terms(self, z_s: Tensor, z_t: Tensor, labels: Tensor,
                  temp: Union[float, Tensor]) -> tuple:
        """Per-sample TCKD and NCKD KL divergences (B, ) at temperature
        ``temp`` (a float, 0-d or (B, 1) tensor), before T^2 / B."""
        if self.logit_standardization:
            z_s, z_t = standardize_logits(z_s), standardize_logits(z_t)
        z_s, z_t = z_s / temp, z_t / temp
        # scatter, not F.one_hot: one_hot checks the label range on the host
        gt_mask = torch.zeros_like(z_s, dtype=torch.bool).scatter_(
            1, labels.long()[:, None], True)
        tckd = F.kl_div(_binary_log_probs(z_s, gt_mask),
                        _binary_log_probs(z_t, gt_mask),
                        reduction='none', log_target=True).sum(dim=1)
        mask_shift = TARGET_MASK_VALUE * gt_mask.to(z_s.dtype)
        nckd = F.kl_div(F.log_softmax(z_s - mask_shift, dim=1),
                        F.log_softmax(z_t - mask_shift, dim=1),
                        reduction='none', log_target=True).sum(dim=1)
        return tckd, nckd
