# Copyright (c) mmkd_plugin contributors.
"""Curriculum Temperature Knowledge Distillation (CTKD).

Li et al., "Curriculum Temperature for Knowledge Distillation", AAAI 2023.
https://arxiv.org/abs/2211.16231 (code: github.com/zhengli97/CTKD)

The distillation temperature is a learnable parameter trained adversarially:
a gradient-reversal layer makes it ascend the distillation loss that the
student descends, with a reversal strength that grows over the first epochs
(the curriculum). It wraps any logit loss whose ``forward`` takes a
``temperature`` tensor (``KDLoss``, ``DKDLoss``).
"""
import inspect
import math
from typing import Optional

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import current_epoch
from .kd_loss import check_logits

SCHEDULES = ('cosine', 'linear')


class GradientReversal(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``coeff``.

    The sign convention is the CTKD code's: the layer does not negate by
    itself, the curriculum passes ``coeff <= 0`` (the paper's view: a layer
    that negates, with a strength rising from 0 to 1).
    """

    @staticmethod
    def forward(ctx, inputs: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return inputs.clone()

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple:
        return grad_output * ctx.coeff, None


def reverse_gradient(inputs: Tensor, coeff: float) -> Tensor:
    """Apply :class:`GradientReversal` with coefficient ``coeff``."""
    return GradientReversal.apply(inputs, coeff)


def cosine_curriculum(epoch: int, lambda_max: float, lambda_min: float,
                      num_epochs: int) -> float:
    """CTKD's cosine schedule of the reversal coefficient.

    ``lambda_min + (lambda_max - lambda_min) * (1 + cos(pi * e / L)) / 2``
    with ``e = min(max(epoch, 0), L)``: ``lambda_max`` at e = 0,
    ``lambda_min`` from e = L on.

    Args:
        epoch (int): The epoch, counted from 1 as in the paper.
        lambda_max (float): Value at epoch 0 (CTKD: 0).
        lambda_min (float): Value from epoch L on (CTKD: -1).
        num_epochs (int): The curriculum length L.

    Returns:
        float: The coefficient.
    """
    epoch = min(max(epoch, 0), num_epochs)
    factor = (1.0 + math.cos(math.pi * epoch / num_epochs)) / 2
    return lambda_min + (lambda_max - lambda_min) * factor


def linear_curriculum(epoch: int, lambda_max: float, lambda_min: float,
                      num_epochs: int) -> float:
    """CTKD's linear schedule: ``-e * (lambda_max - lambda_min) / L``.

    As in the authors' ``LinearDecay``, ``e`` is clamped to [0, L - 1] and
    the schedule starts from 0 whatever ``lambda_max`` is; its last value
    is ``-(L - 1) * (lambda_max - lambda_min) / L`` (-0.9 for L = 10 and
    the default range).

    Args:
        epoch (int): The epoch, counted from 1 as in the paper.
        lambda_max (float): Upper end of the range.
        lambda_min (float): Lower end of the range.
        num_epochs (int): The curriculum length L.

    Returns:
        float: The coefficient.
    """
    epoch = min(max(epoch, 0), num_epochs - 1)
    return -epoch * (lambda_max - lambda_min) / num_epochs


CURRICULA = dict(cosine=cosine_curriculum, linear=linear_curriculum)


class GlobalTemperature(nn.Module):
    """One learnable temperature: ``tau = t_start + t_end * sigmoid(theta)``.

    ``theta`` (initialised to 1, so tau = 15.62 with the defaults) passes
    through the gradient-reversal layer before the sigmoid bound, as in the
    CTKD code.

    Args:
        t_start (float): Lower bound of tau.
        t_end (float): Width of tau's range (tau < t_start + t_end).
    """

    def __init__(self, t_start: float, t_end: float) -> None:
        super().__init__()
        self.t_start = t_start
        self.t_end = t_end
        self.theta = nn.Parameter(torch.tensor(1.0))

    def forward(self, coeff: float) -> Tensor:
        """The temperature (0-d), with gradients reversed by ``coeff``."""
        theta = reverse_gradient(self.theta, coeff)
        return self.t_start + self.t_end * torch.sigmoid(theta)


class InstanceTemperature(nn.Module):
    """One temperature per sample from a small MLP (our design, see below).

    NOT the authors' predictor: theirs is released only as an archive and
    its architecture is unverified. This one maps the detached
    concatenation ``[z_s, z_t]`` (B, 2C) through Linear(2C, hidden), ReLU,
    Linear(hidden, 1) to ``theta_b``, reverses its gradient and bounds it as
    the global module does: ``tau_b = t_start + t_end * sigmoid(theta_b)``.
    The last layer starts at weight 0 and bias 1, so every tau_b starts at
    the global module's initial value. The inputs are detached: the student
    learns from the loss at the predicted temperatures, not through the
    predictor.

    Args:
        t_start (float): Lower bound of tau.
        t_end (float): Width of tau's range.
        num_classes (int): C.
        hidden_channels (int): Width of the hidden layer.
    """

    def __init__(self, t_start: float, t_end: float, num_classes: int,
                 hidden_channels: int) -> None:
        super().__init__()
        self.t_start = t_start
        self.t_end = t_end
        self.mlp = nn.Sequential(
            nn.Linear(2 * num_classes, hidden_channels), nn.ReLU(),
            nn.Linear(hidden_channels, 1))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.constant_(self.mlp[2].bias, 1.0)

    def forward(self, coeff: float, student_logits: Tensor,
                teacher_logits: Tensor) -> Tensor:
        """Per-sample temperatures (B, ), gradients reversed by ``coeff``."""
        inputs = torch.cat([student_logits, teacher_logits], dim=1).detach()
        theta = self.mlp(inputs.to(self.mlp[0].weight.dtype)).squeeze(1)
        theta = reverse_gradient(theta, coeff)
        return self.t_start + self.t_end * torch.sigmoid(theta)


def _forward_params(module: nn.Module) -> dict:
    return inspect.signature(module.forward).parameters


@MODELS.register_module()
class CTKDLoss(nn.Module):
    """Curriculum Temperature KD (Li et al., AAAI 2023).

    Calls the inner logit loss with a learnt temperature ``tau`` in place of
    its own ``temperature`` (the inner loss's weights, e.g. KD's
    ``loss_weight`` or DKD's alpha / beta, still apply; its configured
    temperature is unused). tau's parameters live in this module, hence in
    the student's optimizer (same SGD as the student, as in the paper),
    and receive the gradient of the loss multiplied by
    ``lambda(e) <= 0``: the temperature ascends the loss the student
    descends. ``lambda(e)`` follows the curriculum (cosine by default, see
    :func:`cosine_curriculum`, :func:`linear_curriculum`) with the epoch
    ``e`` counted from 1 (:func:`mmkd_plugin.models.utils.current_epoch`).
    CIFAR uses ``curriculum_epochs=10``, ImageNet 5 (the default). Under an
    iteration-based loop the runner's epoch stays 0, so lambda stays at its
    epoch-1 value.

    Args:
        loss (dict): The inner logit loss; its ``forward`` must take
            ``temperature``. Defaults to ``dict(type='KDLoss')``.
        t_start (float): Lower bound of tau (> 0). Defaults to 1.
        t_end (float): Width of tau's range (>= 0). Defaults to 20.
        lambda_max (float): Curriculum start. Defaults to 0.
        lambda_min (float): Curriculum end. Defaults to -1.
        curriculum_epochs (int): Curriculum length L. Defaults to 5.
        schedule (str): ``'cosine'`` or ``'linear'``. Defaults to cosine.
        instance_wise (bool): One temperature per sample from
            :class:`InstanceTemperature`, a predictor of OUR design (the
            authors' is unreleased). Defaults to False (the global tau).
        num_classes (int, optional): C; required with ``instance_wise``.
        hidden_channels (int): Hidden width of the instance-wise predictor.
            Defaults to 256.
    """

    def __init__(self,
                 loss: Optional[dict] = None,
                 t_start: float = 1.0,
                 t_end: float = 20.0,
                 lambda_max: float = 0.0,
                 lambda_min: float = -1.0,
                 curriculum_epochs: int = 5,
                 schedule: str = 'cosine',
                 instance_wise: bool = False,
                 num_classes: Optional[int] = None,
                 hidden_channels: int = 256) -> None:
        super().__init__()
        _check_ctkd_args(t_start, t_end, curriculum_epochs, schedule,
                         instance_wise, num_classes)
        self.loss = MODELS.build(loss or dict(type='KDLoss'))
        inner_params = _forward_params(self.loss)
        if 'temperature' not in inner_params:
            raise ValueError(
                f'CTKDLoss: the inner loss {type(self.loss).__name__} has no '
                '`temperature` argument in forward(), so a learnt '
                'temperature cannot be passed to it; use KDLoss or DKDLoss.')
        self.inner_takes_labels = 'labels' in inner_params
        self.lambda_max = lambda_max
        self.lambda_min = lambda_min
        self.curriculum_epochs = curriculum_epochs
        self.schedule = schedule
        self.instance_wise = instance_wise
        self.num_classes = num_classes
        if instance_wise:
            self.temperature_module = InstanceTemperature(
                t_start, t_end, num_classes, hidden_channels)
        else:
            self.temperature_module = GlobalTemperature(t_start, t_end)

    def reversal_coefficient(self) -> float:
        """lambda of the current epoch (counted from 1)."""
        epoch = current_epoch(self.curriculum_epochs, 'CTKDLoss')
        return CURRICULA[self.schedule](epoch, self.lambda_max,
                                        self.lambda_min,
                                        self.curriculum_epochs)

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                labels: Optional[Tensor] = None) -> Tensor:
        """Compute the inner loss at the learnt temperature.

        Args:
            student_logits (Tensor): Student logits (B, C).
            teacher_logits (Tensor): Teacher logits (B, C).
            labels (Tensor, optional): Target classes (B, ), passed on to
                an inner loss that takes them (DKD needs them).

        Returns:
            Tensor: Scalar loss.
        """
        check_logits('CTKDLoss', student_logits, teacher_logits)
        tau = self._temperature(student_logits, teacher_logits)
        kwargs = dict(temperature=tau)
        if self.inner_takes_labels:
            if labels is None:
                raise ValueError(
                    f'CTKDLoss: the inner {type(self.loss).__name__} needs '
                    'labels, but none were given.')
            kwargs['labels'] = labels
        return self.loss(student_logits, teacher_logits, **kwargs)

    def _temperature(self, student_logits: Tensor,
                     teacher_logits: Tensor) -> Tensor:
        coeff = self.reversal_coefficient()
        if not self.instance_wise:
            return self.temperature_module(coeff)
        if student_logits.shape[1] != self.num_classes:
            raise ValueError(
                f'CTKDLoss: instance-wise predictor built for num_classes='
                f'{self.num_classes}, got logits of shape '
                f'{tuple(student_logits.shape)}.')
        return self.temperature_module(coeff, student_logits, teacher_logits)


def _check_ctkd_args(t_start: float, t_end: float, curriculum_epochs: int,
                     schedule: str, instance_wise: bool,
                     num_classes: Optional[int]) -> None:
    """Raise a ValueError naming the bad CTKDLoss argument."""
    if not t_start > 0 or not t_end >= 0:
        raise ValueError('CTKDLoss: tau = t_start + t_end * sigmoid(theta) '
                         'must stay positive: need t_start > 0 and t_end >= '
                         f'0, got t_start={t_start}, t_end={t_end}.')
    if not isinstance(curriculum_epochs, int) or curriculum_epochs < 1:
        raise ValueError('CTKDLoss: curriculum_epochs must be an integer >= '
                         f'1, got {curriculum_epochs!r}.')
    if schedule not in SCHEDULES:
        raise ValueError(f'CTKDLoss: schedule must be one of {SCHEDULES}, '
                         f'got {schedule!r}.')
    if instance_wise and (not isinstance(num_classes, int)
                          or num_classes < 1):
        raise ValueError('CTKDLoss: instance_wise=True needs num_classes (a '
                         f'positive integer), got {num_classes!r}.')
