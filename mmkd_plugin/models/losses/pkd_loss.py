# Copyright (c) mmkd_plugin contributors.
"""Pearson-correlation knowledge distillation (PKD).

Cao et al., "PKD: General Distillation Framework for Object Detectors via
Pearson Correlation Coefficient", NeurIPS 2022.
https://arxiv.org/abs/2207.02039
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from .precision import full_precision
from .shape_check import check_feature_pair

PKD_EPS = 1e-6


def pkd_standardize(feat: Tensor, unbiased: bool = True) -> Tensor:
    """Standardise every channel over (N, H, W) jointly.

    Args:
        feat (Tensor): Feature (N, C, H, W).
        unbiased (bool): Use the sample standard deviation (Bessel's
            correction, ``M - 1`` in the denominator with M = N*H*W values
            per channel), as the reference's ``Tensor.std`` does; otherwise
            the population one (``M``). With a single value per channel
            (M = 1) the sample std is undefined; the population one (0) is
            used, and the channel standardises to 0 either way. Defaults to
            True.

    Returns:
        Tensor: ``(feat - mean_c) / (std_c + 1e-6)``, same shape.
    """
    num_values = feat.numel() // max(feat.shape[1], 1)
    correction = 1 if unbiased and num_values > 1 else 0
    std, mean = torch.std_mean(feat, dim=(0, 2, 3), correction=correction,
                               keepdim=True)
    return (feat - mean) / (std + PKD_EPS)


@MODELS.register_module()
class PKDLoss(nn.Module):
    """Pearson-correlation distillation loss for one feature level.

    Both features are standardised per channel over (N, H, W), after which
    their MSE is a function of the Pearson correlation coefficient only:

        loss = loss_weight * mean((S_n - T_n)^2) / 2

    When the spatial sizes differ one side is resized bilinearly
    (``align_corners=False``) to the other. There is no channel adapter:
    student and teacher channels must match.

    Note:
        The standard deviation is by default the sample one (Bessel's
        correction), as the authors' public implementation computes it
        (``Tensor.std``), so the value equals theirs on any input size.
        ``std_unbiased=False`` uses the population one instead, which
        differs by a factor sqrt((M - 1) / M), M = N*H*W.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0 (the paper
            uses 6 for Faster R-CNN and 10 for RetinaNet).
        resize_stu (bool): Resize the student to the teacher's size if they
            differ; otherwise resize the teacher to the student's. Defaults
            to True.
        std_unbiased (bool): Standardise with the sample standard deviation
            (the reference's); False for the population one. Defaults to
            True.
    """

    allows_spatial_mismatch = True

    def __init__(self, loss_weight: float = 1.0,
                 resize_stu: bool = True,
                 std_unbiased: bool = True) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.resize_stu = resize_stu
        self.std_unbiased = std_unbiased

    def forward(self,
                student_feat: Tensor,
                teacher_feat: Tensor,
                data_samples: Optional[list] = None) -> Tensor:
        """Compute the loss for one feature level.

        Args:
            student_feat (Tensor): Student feature (N, C, H_s, W_s).
            teacher_feat (Tensor): Teacher feature (N, C, H_t, W_t).
            data_samples (list, optional): Unused; part of the shared
                feature-loss call convention.

        Returns:
            Tensor: Scalar loss.
        """
        self._check_shapes(student_feat, teacher_feat)
        with full_precision(student_feat) as dtype:
            student = student_feat.to(dtype)
            teacher = teacher_feat.detach().to(dtype)
            student, teacher = self._match_size(student, teacher)
            mse = F.mse_loss(
                pkd_standardize(student, self.std_unbiased),
                pkd_standardize(teacher, self.std_unbiased))
        return self.loss_weight * mse / 2

    @staticmethod
    def _check_shapes(student_feat: Tensor, teacher_feat: Tensor) -> None:
        """Raise ValueError for non-4-D inputs or differing channels."""
        check_feature_pair('PKDLoss', student_feat, teacher_feat,
                           same_channels=False, same_spatial=False)
        if student_feat.shape[1] != teacher_feat.shape[1]:
            raise ValueError(
                'PKDLoss has no channel adapter and needs equal channels: '
                f'student feature {tuple(student_feat.shape)}, teacher '
                f'feature {tuple(teacher_feat.shape)}.')

    def _match_size(self, student: Tensor, teacher: Tensor) -> tuple:
        """Resize one side bilinearly so both share a spatial size."""
        if student.shape[2:] == teacher.shape[2:]:
            return student, teacher
        if self.resize_stu:
            student = F.interpolate(student, size=teacher.shape[2:],
                                    mode='bilinear', align_corners=False)
        else:
            teacher = F.interpolate(teacher, size=student.shape[2:],
                                    mode='bilinear', align_corners=False)
        return student, teacher
