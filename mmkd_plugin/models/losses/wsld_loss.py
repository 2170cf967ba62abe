# Copyright (c) mmkd_plugin contributors.
"""WSLD: weighted soft labels.

Zhou et al., "Rethinking Soft Labels for Knowledge Distillation: A
Bias-Variance Tradeoff Perspective", ICLR 2021.
https://arxiv.org/abs/2102.00650

The loss follows mmrazor's WSLD implementation (a soft cross-entropy, not a
KL, weighted per sample).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from .kd_loss import check_labels, check_logits
from .precision import full_precision

# Added to the teacher's hard cross-entropy in the weight's denominator, as
# in the reference implementation.
WEIGHT_EPS = 1e-7


@MODELS.register_module()
class WSLDLoss(nn.Module):
    """Soft-label cross-entropy weighted per sample by the hard-label losses.

    With ``y`` the label of a sample and all cross-entropies per sample::

        CE_i = -sum_c softmax(z_t / tau)_c * log softmax(z_s / tau)_c
        w_i = 1 - exp(-max(0, ce(z_s, y) / (ce(z_t, y) + 1e-7)))
        loss = loss_weight * tau^2 * mean_i (w_i * CE_i)

    The weights use the hard cross-entropies at temperature 1 of the
    detached logits, so no gradient flows through them; a sample the
    teacher gets right but the student does not keeps weight near 1, one
    the student fits better than the teacher is down-weighted. An empty
    batch gives 0. Computes in float32 with autocast disabled (float64
    inputs stay float64); no gradient flows into the teacher logits.

    mmrazor's ImageNet config (ResNet-34 -> ResNet-18) uses tau 2 and
    ``loss_weight=2.5``, with the student's cross-entropy kept at 1.

    Args:
        temperature (float): Softmax temperature tau of the soft labels.
            Defaults to 1.
        loss_weight (float): Overall weight. Defaults to 1.
    """

    def __init__(self,
                 temperature: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f'WSLDLoss: temperature must be positive, got {temperature}.')
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor,
                labels: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            student_logits (Tensor): Student logits (B, C).
            teacher_logits (Tensor): Teacher logits (B, C).
            labels (Tensor): Target classes (B, ), in [0, C).

        Returns:
            Tensor: Scalar loss.
        """
        check_logits('WSLDLoss', student_logits, teacher_logits)
        check_labels('WSLDLoss', labels, student_logits)
        if student_logits.shape[0] == 0:
            return student_logits.sum() * 0.0
        with full_precision(student_logits) as dtype:
            z_s = student_logits.to(dtype)
            z_t = teacher_logits.detach().to(dtype)
            temp = self.temperature
            soft_ce = -(F.softmax(z_t / temp, dim=1) *
                        F.log_softmax(z_s / temp, dim=1)).sum(dim=1)
            weight = self._sample_weights(z_s.detach(), z_t, labels.long())
            return self.loss_weight * temp**2 * (weight * soft_ce).mean()

    @staticmethod
    def _sample_weights(z_s: Tensor, z_t: Tensor, labels: Tensor) -> Tensor:
        """``1 - exp(-max(0, ce_s / (ce_t + eps)))`` per sample (B, )."""
        ce_s = F.cross_entropy(z_s, labels, reduction='none')
        ce_t = F.cross_entropy(z_t, labels, reduction='none')
        ratio = (ce_s / (ce_t + WEIGHT_EPS)).clamp(min=0)
        return 1 - torch.exp(-ratio)
