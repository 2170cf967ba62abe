# Copyright (c) mmkd_plugin contributors.
"""Logit knowledge distillation (KD).

Hinton et al., "Distilling the Knowledge in a Neural Network", NIPS Deep
Learning Workshop 2015. https://arxiv.org/abs/1503.02531

Optional logit standardisation from Sun et al., "Logit Standardization in
Knowledge Distillation", CVPR 2024. https://arxiv.org/abs/2403.01427
"""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import device_scalar
from .precision import full_precision

STANDARDIZE_EPS = 1e-7


def standardize_logits(logits: Tensor, eps: float = STANDARDIZE_EPS) -> Tensor:
    """Z-score every sample's logits over the class dim (Sun et al. 2024).

    ``z -> (z - mean(z)) / (std(z) + eps)`` with the unbiased standard
    deviation over the last dim, as in the authors' code.

    Args:
        logits (Tensor): Logits (B, C).
        eps (float): Added to the standard deviation. Defaults to 1e-7.

    Returns:
        Tensor: Standardised logits, same shape.
    """
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True)
    return (logits - mean) / (std + eps)


def sample_count(num_samples: int,
                 avg_factor: Optional[Union[float, Tensor]],
                 like: Tensor) -> Union[float, Tensor]:
    """The divisor of a summed logit loss: ``avg_factor`` if given (as a
    tensor like ``like``), else ``num_samples``; at least 1 either way."""
    if avg_factor is None:
        return max(num_samples, 1)
    return device_scalar(avg_factor, like).clamp(min=1)


def check_logits(name: str, student_logits: Tensor,
                 teacher_logits: Tensor) -> None:
    """Raise a ValueError naming both shapes unless both are equal (B, C)."""
    if student_logits.dim() != 2 or \
            student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f'{name} expects student and teacher logits of the same (B, C) '
            f'shape, got {tuple(student_logits.shape)} and '
            f'{tuple(teacher_logits.shape)}.')


def check_labels(name: str, labels: Tensor, logits: Tensor) -> None:
    """Raise a ValueError naming the shapes unless ``labels`` are (B, )
    integer classes in [0, C) for logits of shape (B, C).

    The range is checked for labels on the CPU only: on an accelerator the
    check would make the host wait for the device at every step; there an
    out-of-range label fails in the loss's own indexing (a device-side
    assert) instead.
    """
    num_samples, num_classes = logits.shape
    if labels.shape != (num_samples, ) or labels.is_floating_point():
        raise ValueError(
            f'{name} expects integer labels of shape {(num_samples, )} for '
            f'logits of shape {tuple(logits.shape)}, got '
            f'{labels.dtype} labels of shape {tuple(labels.shape)}.')
    if labels.device.type != 'cpu' or not num_samples:
        return
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f'{name}: labels must lie in [0, {num_classes}) for logits of '
            f'shape {tuple(logits.shape)}, got [{int(labels.min())}, '
            f'{int(labels.max())}].')


def call_temperature(name: str, temperature: Tensor, num_samples: int,
                     dtype: torch.dtype) -> Tensor:
    """A per-call temperature, shaped to divide (B, C) logits.

    Args:
        name (str): Name of the calling loss, used in the message.
        temperature (Tensor): A scalar (0-d) temperature, or one per sample
            (B, ). It stays in the graph, so a learnt temperature (CTKD)
            gets gradients.
        num_samples (int): The batch size B.
        dtype (torch.dtype): The dtype the loss computes in.

    Returns:
        Tensor: The temperature as a 0-d tensor or a (B, 1) column.
    """
    if not isinstance(temperature, Tensor) or not (
            temperature.dim() == 0 or temperature.shape == (num_samples, )):
        shape = tuple(temperature.shape) if isinstance(
            temperature, Tensor) else type(temperature).__name__
        raise ValueError(
            f'{name}: temperature must be a 0-d tensor or a tensor of shape '
            f'({num_samples}, ) (one per sample), got {shape}.')
    temperature = temperature.to(dtype)
    return temperature if temperature.dim() == 0 else temperature[:, None]


def temperature_weighted_sum(per_sample: Tensor,
                             temperature: Union[float, Tensor]) -> Tensor:
    """``sum_b T_b^2 * per_sample[b]`` for a float, 0-d or (B, 1) T."""
    if isinstance(temperature, Tensor) and temperature.dim() > 0:
        return (temperature.reshape(-1)**2 * per_sample).sum()
    return temperature**2 * per_sample.sum()


@MODELS.register_module()
class KDLoss(nn.Module):
    """Softmax KL distillation with a temperature (Hinton et al., 2015)::

        loss = loss_weight * T^2 / B * sum_b KL(softmax(z_T[b] / T)
                                               || softmax(z_S[b] / T))

    The KL is summed over the classes and averaged over the B samples (an
    empty batch gives 0); per-sample ``weight`` and an ``avg_factor`` in
    place of B may be given, as in mmdet's losses. A ``temperature`` tensor
    given to :meth:`forward` (a learnt one, as in CTKD) replaces T; one per
    sample gives ``1 / B * sum_b T_b^2 KL_b`` with ``T_b`` in the softmax of
    row b. Computes in float32 with autocast disabled (float64 inputs stay
    float64). With ``logit_standardization=True`` both logit vectors are
    z-scored per sample (:func:`standardize_logits`) before the division by
    T (Sun et al., CVPR 2024). No gradient flows into the teacher logits.

    Args:
        temperature (float): Softmax temperature T. Defaults to 4.
        loss_weight (float): Loss weight. Defaults to 1.
        logit_standardization (bool): Z-score the logits first. Defaults to
            False.
    """

    def __init__(self,
                 temperature: float = 4.0,
                 loss_weight: float = 1.0,
                 logit_standardization: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(
                f'KDLoss: temperature must be positive, got {temperature}.')
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.logit_standardization = logit_standardization

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                temperature: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            student_logits (Tensor): Student logits (B, C).
            teacher_logits (Tensor): Teacher logits (B, C).
            weight (Tensor, optional): Per-sample weights (B, ) of the KL
                terms. Defaults to all ones.
            avg_factor (float | Tensor, optional): Divisor of the weighted
                sum instead of B (clamped to at least 1), e.g. the sample
                count averaged over processes, so that DDP's gradient
                averaging gives the mean over the global batch.
            temperature (Tensor, optional): Replaces ``self.temperature``
                for this call: 0-d, or (B, ) for one per sample. Gradients
                flow into it. Its positivity is the caller's to ensure (not
                checked, to avoid a host sync).

        Returns:
            Tensor: Scalar loss.
        """
        check_logits('KDLoss', student_logits, teacher_logits)
        with full_precision(student_logits) as dtype:
            z_s = student_logits.to(dtype)
            z_t = teacher_logits.detach().to(dtype)
            if self.logit_standardization:
                z_s, z_t = standardize_logits(z_s), standardize_logits(z_t)
            temp = self.temperature if temperature is None else \
                call_temperature('KDLoss', temperature,
                                 student_logits.shape[0], dtype)
            log_p_s = F.log_softmax(z_s / temp, dim=1)
            log_p_t = F.log_softmax(z_t / temp, dim=1)
            kl = F.kl_div(log_p_s, log_p_t, reduction='none',
                          log_target=True).sum(dim=1)
            if weight is not None:
                kl = kl * weight.to(dtype)
            total = self.loss_weight * temperature_weighted_sum(kl, temp)
            return total / sample_count(student_logits.shape[0], avg_factor,
                                        total)
