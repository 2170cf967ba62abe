# Copyright (c) mmkd_plugin contributors.
"""Channel-wise Distillation (CWD).

Shu et al., "Channel-wise Knowledge Distillation for Dense Prediction",
ICCV 2021. https://arxiv.org/abs/2011.13256
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from .channel_align import build_channel_align
from .precision import full_precision
from .shape_check import check_feature_pair


@MODELS.register_module()
class CWDLoss(nn.Module):
    """Channel-wise distillation loss.

    Every channel of a feature map is turned into a distribution over its
    H*W positions with a temperature softmax; the loss is the KL divergence
    KL(p_T || p_S) summed over positions, channels and images, including the
    teacher-entropy term:

        loss = loss_weight * tau^2 * sum_{n,c,i} p_T (log p_T - log p_S) / (N*C)

    The teacher feature is detached. The align conv and the loss run in
    float32 with autocast disabled (float64 inputs stay float64).

    Args:
        student_channels (int, optional): Student channels. With
            ``teacher_channels``, adds a 1x1 align conv when they differ.
        teacher_channels (int, optional): Teacher channels.
        tau (float): Softmax temperature. Defaults to 1.0.
        loss_weight (float): Weight of the loss. Defaults to 10.0 (the
            paper's RetinaNet / Faster R-CNN setting).
        standardize (bool): Standardise both features per channel over
            (N, H, W) with the batch's own statistics before the loss, as
            ``BatchNorm(affine=False, track_running_stats=False)`` does in
            training (biased variance, eps 1e-5), and make the align conv
            bias-free (the standardisation would remove its bias). These are
            the student and teacher connectors of the RTMDet distillation
            configs of mmyolo / mmrazor (conv 1x1 without bias + BN on the
            student, BN alone on the teacher). Defaults to False.
    """

    def __init__(self,
                 student_channels: Optional[int] = None,
                 teacher_channels: Optional[int] = None,
                 tau: float = 1.0,
                 loss_weight: float = 10.0,
                 standardize: bool = False) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'CWDLoss: tau must be positive, got {tau}.')
        self.tau = tau
        self.loss_weight = loss_weight
        self.standardize = standardize
        if student_channels is None or teacher_channels is None:
            self.align = nn.Identity()
        else:
            self.align = build_channel_align(student_channels,
                                             teacher_channels,
                                             bias=not standardize)

    def forward(self,
                student_feat: Tensor,
                teacher_feat: Tensor,
                data_samples: Optional[list] = None) -> Tensor:
        """Compute the loss for one feature level.

        Args:
            student_feat (Tensor): Student feature (N, C_s, H, W).
            teacher_feat (Tensor): Teacher feature (N, C_t, H, W).
            data_samples (list, optional): Unused; part of the shared
                feature-loss call convention.

        Returns:
            Tensor: Scalar loss.
        """
        with full_precision(student_feat) as dtype:
            student = self.align(student_feat.to(dtype))
            teacher = teacher_feat.detach().to(dtype)
            check_feature_pair('CWDLoss', student, teacher)
            if self.standardize:
                student = standardize_channels(student)
                teacher = standardize_channels(teacher)
            num_images, num_channels = teacher.shape[:2]
            log_p_s = F.log_softmax(student.flatten(2) / self.tau, dim=2)
            log_p_t = F.log_softmax(teacher.flatten(2) / self.tau, dim=2)
            kl_sum = F.kl_div(log_p_s, log_p_t, reduction='sum',
                              log_target=True)
        return self.loss_weight * self.tau**2 * kl_sum / (
            num_images * num_channels)


def standardize_channels(feat: Tensor, eps: float = 1e-5) -> Tensor:
    """Standardise each channel over (N, H, W) with the batch's statistics.

    The same as ``BatchNorm2d(affine=False, track_running_stats=False)`` in
    training mode: biased variance, ``eps`` added to it. Computed in at
    least float32, outside autocast.

    Args:
        feat (Tensor): Feature (N, C, H, W).
        eps (float): Added to the variance. Defaults to 1e-5 (BatchNorm's).

    Returns:
        Tensor: The standardised feature, same shape.
    """
    with full_precision(feat) as dtype:
        feat = feat.to(dtype)
        dims = [0] + list(range(2, feat.dim()))
        mean = feat.mean(dim=dims, keepdim=True)
        var = feat.var(dim=dims, unbiased=False, keepdim=True)
        return (feat - mean) * torch.rsqrt(var + eps)
