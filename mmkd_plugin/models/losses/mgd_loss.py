# Copyright (c) mmkd_plugin contributors.
"""Masked Generative Distillation (MGD).

Yang et al., "Masked Generative Distillation", ECCV 2022.
https://arxiv.org/abs/2205.01529
"""
from typing import Optional

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .channel_align import build_channel_align
from .precision import full_precision
from .shape_check import check_feature_pair


def mgd_random_mask(feat: Tensor, lambda_mgd: float) -> Tensor:
    """Draw MGD's random spatial mask for a feature map.

    Uses torch's global RNG (``torch.rand``), so ``torch.manual_seed``
    makes it reproducible. As in the reference, a cell is masked out (0)
    where ``rand > 1 - lambda_mgd``, i.e. with probability ``lambda_mgd``.
    The draw happens on the feature's device (the reference draws on the
    CPU and copies), so on CPU it reproduces the reference's mask exactly.

    Args:
        feat (Tensor): Feature (N, C, H, W).
        lambda_mgd (float): Masking probability.

    Returns:
        Tensor: Mask (N, 1, H, W) of 0 / 1 in ``feat``'s dtype.
    """
    num_images, _, height, width = feat.shape
    rand = torch.rand((num_images, 1, height, width), device=feat.device)
    return (rand <= 1 - lambda_mgd).to(feat.dtype)


@MODELS.register_module()
class MGDLoss(nn.Module):
    """Masked generative distillation loss for one feature level.

    The (aligned) student feature is randomly masked, passed through a
    generator conv3x3 -> ReLU -> conv3x3 (C_t -> C_t), and regressed onto
    the teacher feature:

        loss = alpha_mgd * sum (G(S' * M) - T)^2 / N

    with a fresh mask M every call. Everything, the generator included,
    runs in float32 with autocast disabled (float64 inputs stay float64),
    so the regression target is not rounded to half precision.

    Args:
        student_channels (int): Channels of the student feature. A 1x1
            align conv is added when they differ from ``teacher_channels``.
        teacher_channels (int): Channels of the teacher feature.
        alpha_mgd (float): Loss weight. Defaults to 2e-5 (RetinaNet).
        lambda_mgd (float): Masking probability. Defaults to 0.65.
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 alpha_mgd: float = 2e-5,
                 lambda_mgd: float = 0.65) -> None:
        super().__init__()
        if not 0 <= lambda_mgd <= 1:
            raise ValueError('MGDLoss: lambda_mgd must be in [0, 1], got '
                             f'{lambda_mgd}.')
        self.alpha_mgd = alpha_mgd
        self.lambda_mgd = lambda_mgd
        self.align = build_channel_align(student_channels, teacher_channels)
        self.generation = nn.Sequential(
            nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1))

    def forward(self,
                student_feat: Tensor,
                teacher_feat: Tensor,
                data_samples: Optional[list] = None) -> Tensor:
        """Compute the loss for one feature level.

        Args:
            student_feat (Tensor): Student feature (N, C_s, H, W).
            teacher_feat (Tensor): Teacher feature (N, C_t, H, W); detached.
            data_samples (list, optional): Unused; part of the shared
                feature-loss call convention.

        Returns:
            Tensor: Scalar loss.
        """
        with full_precision(student_feat) as dtype:
            student = self.align(student_feat.to(dtype))
            teacher = teacher_feat.detach().to(dtype)
            check_feature_pair('MGDLoss', student, teacher)
            mask = mgd_random_mask(student, self.lambda_mgd)
            generated = self.generation(student * mask)
            sq_err = (generated - teacher).square().sum()
        return self.alpha_mgd * sq_err / student.shape[0]
