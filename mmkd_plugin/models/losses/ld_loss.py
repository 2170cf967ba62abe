# Copyright (c) mmkd_plugin contributors.
"""Localization Distillation (LD) loss.

Zheng et al., "Localization Distillation for Dense Object Detection",
CVPR 2022. https://arxiv.org/abs/2102.12252
"""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from ..utils import device_scalar
from .precision import full_precision

_NORMALIZE_MODES = ('constant', 'num_pos')
_BIN_REDUCTIONS = ('mean', 'sum')


def temperature_kl(student_logits: Tensor, teacher_logits: Tensor,
                   temperature: float) -> Tensor:
    """KL(softmax(z_T / T) || softmax(z_S / T)) * T^2 per element.

    Args:
        student_logits (Tensor): Student logits (..., K).
        teacher_logits (Tensor): Teacher logits (..., K); no gradient flows
            into them.
        temperature (float): Softmax temperature T.

    Returns:
        Tensor: ``p_T * (log p_T - log p_S) * T^2`` of shape (..., K), in
        float32 (or float64 for float64 inputs). Sum over the last dim for
        the KL divergence of each distribution.
    """
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    log_p_s = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1)
    log_p_t = F.log_softmax(
        teacher_logits.detach().to(dtype) / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction='none',
                    log_target=True) * temperature**2


@MODELS.register_module()
class LDLoss(nn.Module):
    """Localization distillation loss between box-side distributions.

    GFL-style heads predict, for each of the 4 box sides of a location, a
    distribution over ``reg_max + 1`` bins. LD makes the student's
    distributions match the teacher's with a temperature softmax KL::

        kl[l, s] = T^2 * KL(softmax(z_T[l, s] / T) || softmax(z_S[l, s] / T))

    for location ``l`` and side ``s``, summed over locations and sides with a
    per-location weight ``w[l]`` (for main LD, the student's detached max
    class score):

    - ``normalize='constant'`` (default, reproduces the public reference):
      the KL is **averaged** over the K bins (``bin_reduction='mean'``, i.e.
      ``kl / K``) and the weighted sum over all locations and sides is
      divided by the constant ``divisor`` (4, the number of sides)::

          loss = loss_weight * sum_{l,s} w[l] * kl[l, s] / K / divisor

      Both are known quirks of the reference: the loss is not normalised by
      the number of locations, so it grows with the number of objects and
      of images per GPU, and the bin mean scales it by 1 / (reg_max + 1).
    - ``normalize='num_pos'``: the same sum divided by ``divisor * num_pos``
      (``num_pos`` given by the caller, e.g. the number of positive
      locations), i.e. a weighted mean over sides and locations that does
      not depend on the batch content.

    ``bin_reduction='sum'`` uses the true KL (sum over bins) instead of the
    bin mean, in either mode.

    Args:
        temperature (float): Softmax temperature T. Defaults to 10.
        loss_weight (float): Loss weight. Defaults to 0.25.
        normalize (str): ``'constant'`` or ``'num_pos'``, see above.
            Defaults to ``'constant'``.
        divisor (float): Constant divisor (the reference uses 4 for main LD
            and 16 for the VLR term). Defaults to 4.
        bin_reduction (str): ``'mean'`` (reference) or ``'sum'`` over the K
            bins. Defaults to ``'mean'``.
    """

    def __init__(self,
                 temperature: float = 10.0,
                 loss_weight: float = 0.25,
                 normalize: str = 'constant',
                 divisor: float = 4.0,
                 bin_reduction: str = 'mean') -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f'LDLoss: temperature must be positive, got {temperature}.')
        if normalize not in _NORMALIZE_MODES:
            raise ValueError(f'LDLoss: normalize must be one of '
                             f'{_NORMALIZE_MODES}, got {normalize!r}.')
        if bin_reduction not in _BIN_REDUCTIONS:
            raise ValueError(f'LDLoss: bin_reduction must be one of '
                             f'{_BIN_REDUCTIONS}, got {bin_reduction!r}.')
        if divisor <= 0:
            raise ValueError(
                f'LDLoss: divisor must be positive, got {divisor}.')
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.normalize = normalize
        self.divisor = divisor
        self.bin_reduction = bin_reduction

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                weight: Optional[Tensor] = None,
                num_pos: Optional[Union[float, Tensor]] = None) -> Tensor:
        """Compute the loss.

        Args:
            student_logits (Tensor): Student bin logits (L, 4, K) (any
                (..., K) shape works: every row over the last dim is one
                distribution).
            teacher_logits (Tensor): Teacher bin logits, same shape.
            weight (Tensor, optional): Weights broadcastable from the left
                over the leading dims, e.g. (L, ) per location. Defaults to
                all ones.
            num_pos (float | Tensor, optional): Normaliser for
                ``normalize='num_pos'`` (clamped to at least 1). Required in
                that mode, ignored otherwise.

        Returns:
            Tensor: Scalar loss.
        """
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                'LDLoss: student and teacher logits differ in shape: '
                f'{tuple(student_logits.shape)} vs '
                f'{tuple(teacher_logits.shape)}.')
        if self.normalize == 'num_pos' and num_pos is None:
            raise ValueError("LDLoss: normalize='num_pos' needs num_pos.")
        with full_precision(student_logits):
            kl = temperature_kl(student_logits, teacher_logits,
                                self.temperature)
            kl = kl.mean(-1) if self.bin_reduction == 'mean' else kl.sum(-1)
            if weight is not None:
                weight = weight.to(kl.dtype)
                weight = weight.reshape(weight.shape + (1, ) *
                                        (kl.dim() - weight.dim()))
                kl = kl * weight
            total = kl.sum() / self.divisor
            if self.normalize == 'num_pos':
                total = total / device_scalar(num_pos, total).clamp(min=1)
        return self.loss_weight * total
