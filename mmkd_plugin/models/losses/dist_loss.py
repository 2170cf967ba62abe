# Copyright (c) mmkd_plugin contributors.
"""DIST: knowledge distillation from a stronger teacher.

Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.
https://arxiv.org/abs/2205.10536

Optional logit standardisation from Sun et al., "Logit Standardization in
Knowledge Distillation", CVPR 2024. https://arxiv.org/abs/2403.01427
"""
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from .kd_loss import check_logits, standardize_logits
from .precision import full_precision

# Added to the product of the norms in the Pearson denominator, as in the
# authors' code.
PEARSON_EPS = 1e-8


def pearson_rows(u: Tensor, v: Tensor, eps: float = PEARSON_EPS) -> Tensor:
    """Pearson correlation of every row of ``u`` with the same row of ``v``.

    The cosine of the mean-centred rows, ``<u', v'> / (|u'| |v'| + eps)``.

    Args:
        u (Tensor): Shape (N, D).
        v (Tensor): Shape (N, D).
        eps (float): Added to the denominator. Defaults to 1e-8.

    Returns:
        Tensor: The N correlations, shape (N, ).
    """
    u = u - u.mean(dim=1, keepdim=True)
    v = v - v.mean(dim=1, keepdim=True)
    return (u * v).sum(dim=1) / (u.norm(dim=1) * v.norm(dim=1) + eps)


@MODELS.register_module()
class DISTLoss(nn.Module):
    """Inter- and intra-class Pearson relation of the class probabilities.

    With ``Y_s = softmax(z_s / tau)``, ``Y_t = softmax(z_t / tau)`` (B, C)
    and ``rho`` the Pearson correlation (:func:`pearson_rows`)::

        inter = 1 - mean_i rho(Y_s[i, :], Y_t[i, :])   # each sample
        intra = 1 - mean_j rho(Y_s[:, j], Y_t[:, j])   # each class
        loss = loss_weight * tau^2 * (inter_weight * inter
                                      + intra_weight * intra)

    The intra-class term correlates each class over the batch, so it is a
    batch statistic: under DDP it is computed on each process's batch, as
    in the authors' code. An empty batch gives 0. With
    ``logit_standardization=True`` both logit vectors are z-scored per
    sample (:func:`standardize_logits`) before the division by tau. Computes
    in float32 with autocast disabled (float64 inputs stay float64); no
    gradient flows into the teacher logits.

    The authors' ImageNet setting uses tau 1 and ``loss_weight=2`` (total
    loss = CE + 2 * L_DIST); their CIFAR-100 setting uses tau 4.

    Args:
        temperature (float): Softmax temperature tau. Defaults to 1.
        inter_weight (float): Weight beta of the inter-class term.
            Defaults to 1.
        intra_weight (float): Weight gamma of the intra-class term.
            Defaults to 1.
        loss_weight (float): Overall weight. Defaults to 1.
        logit_standardization (bool): Z-score the logits first. Defaults to
            False.
    """

    def __init__(self,
                 temperature: float = 1.0,
                 inter_weight: float = 1.0,
                 intra_weight: float = 1.0,
                 loss_weight: float = 1.0,
                 logit_standardization: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f'DISTLoss: temperature must be positive, got {temperature}.')
        self.temperature = temperature
        self.inter_weight = inter_weight
        self.intra_weight = intra_weight
        self.loss_weight = loss_weight
        self.logit_standardization = logit_standardization

    def forward(self, student_logits: Tensor,
                teacher_logits: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            student_logits (Tensor): Student logits (B, C).
            teacher_logits (Tensor): Teacher logits (B, C).

        Returns:
            Tensor: Scalar loss.
        """
        check_logits('DISTLoss', student_logits, teacher_logits)
        if student_logits.shape[0] == 0:
            return student_logits.sum() * 0.0
        with full_precision(student_logits) as dtype:
            z_s = student_logits.to(dtype)
            z_t = teacher_logits.detach().to(dtype)
            if self.logit_standardization:
                z_s, z_t = standardize_logits(z_s), standardize_logits(z_t)
            y_s = (z_s / self.temperature).softmax(dim=1)
            y_t = (z_t / self.temperature).softmax(dim=1)
            inter = 1 - pearson_rows(y_s, y_t).mean()
            intra = 1 - pearson_rows(y_s.t(), y_t.t()).mean()
            return self.loss_weight * self.temperature**2 * (
                self.inter_weight * inter + self.intra_weight * intra)
