# Copyright (c) mmkd_plugin contributors.
"""FitNets hint loss.

Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015.
https://arxiv.org/abs/1412.6550
"""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from .channel_align import build_channel_align
from .precision import full_precision
from .shape_check import check_feature_pair


@MODELS.register_module()
class FitNetLoss(nn.Module):
    """Feature-imitation (hint) loss: MSE between adapted S and T.

        loss = loss_weight * mean((adapter(S) - T)^2)

    Adapter and loss run in float32 with autocast disabled (float64 inputs
    stay float64).

    Args:
        student_channels (int, optional): Student channels. With
            ``teacher_channels``, adds a 1x1 adapter conv when they differ.
        teacher_channels (int, optional): Teacher channels.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 student_channels: Optional[int] = None,
                 teacher_channels: Optional[int] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        if student_channels is None or teacher_channels is None:
            self.align = nn.Identity()
        else:
            self.align = build_channel_align(student_channels,
                                             teacher_channels)

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
            check_feature_pair('FitNetLoss', student, teacher)
            mse = F.mse_loss(student, teacher)
        return self.loss_weight * mse
