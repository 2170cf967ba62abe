# Copyright (c) mmkd_plugin contributors.
"""Masked Generative Distillation (MGD).

Yang et al., "Masked Generative Distillation", ECCV 2022.
https://arxiv.org/abs/2205.01529
"""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from mmengine.dist import get_rank
from torch import Tensor

from .channel_align import build_channel_align
from .precision import full_precision
from .shape_check import check_feature_pair


def mgd_random_mask(feat: Tensor,
                    lambda_mgd: float,
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """Draw MGD's random spatial mask for a feature map.

    As in the reference, a cell is masked out (0) where ``rand > 1 -
    lambda_mgd``, i.e. with probability ``lambda_mgd``. The draw happens on
    the feature's device (the reference draws on the CPU and copies).
    Without ``generator`` it uses torch's global RNG, so after the same
    ``torch.manual_seed`` it reproduces the reference's mask exactly on CPU.

    Args:
        feat (Tensor): Feature (N, C, H, W).
        lambda_mgd (float): Masking probability.
        generator (torch.Generator, optional): Generator on ``feat``'s
            device to draw from instead of the global RNG.

    Returns:
        Tensor: Mask (N, 1, H, W) of 0 / 1 in ``feat``'s dtype.
    """
    num_images, _, height, width = feat.shape
    rand = torch.rand((num_images, 1, height, width), device=feat.device,
                      generator=generator)
    return (rand <= 1 - lambda_mgd).to(feat.dtype)


def mask_draw_seed(mask_seed: int, mask_step: int, rank: int) -> int:
    """Seed of the mask drawn at call ``mask_step`` on process ``rank``.

    A deterministic mix (Python's hash of a tuple of ints does not depend
    on ``PYTHONHASHSEED``) into a non-negative 63-bit int.
    """
    return hash((mask_seed, mask_step, rank)) & (2**63 - 1)


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

    The mask stream resumes exactly: the mask of the k-th call (counted
    from the start of training) on process ``rank`` is drawn from a
    generator seeded with ``(mask_seed, k, rank)``, and ``mask_seed`` and k
    are saved in the state dict (``_extra_state``) and so in checkpoints.
    A training run resumed from a checkpoint therefore draws the masks the
    uninterrupted run would have drawn, and the processes of a distributed
    run draw independent masks. The stream does not touch torch's global
    RNG.

    Args:
        student_channels (int): Channels of the student feature. A 1x1
            align conv is added when they differ from ``teacher_channels``.
        teacher_channels (int): Channels of the teacher feature.
        alpha_mgd (float): Loss weight. Defaults to 2e-5 (RetinaNet).
        lambda_mgd (float): Masking probability. Defaults to 0.65.
        mask_seed (int, optional): Seed of the mask stream. Defaults to a
            number drawn from torch's global RNG when the loss is built
            (so a seeded run is reproducible and every loss instance, e.g.
            one per FPN level, has its own stream).
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 alpha_mgd: float = 2e-5,
                 lambda_mgd: float = 0.65,
                 mask_seed: Optional[int] = None) -> None:
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
        if mask_seed is None:
            mask_seed = int(torch.randint(2**62, ()).item())
        self.mask_seed = int(mask_seed)
        self.mask_step = 0

    def get_extra_state(self) -> dict:
        """Mask-stream position, saved in the state dict."""
        return dict(mask_seed=self.mask_seed, mask_step=self.mask_step)

    def set_extra_state(self, state: dict) -> None:
        """Restore the mask-stream position from the state dict."""
        self.mask_seed = int(state['mask_seed'])
        self.mask_step = int(state['mask_step'])

    def next_mask(self, feat: Tensor) -> Tensor:
        """Draw the next mask of the stream for ``feat`` (N, C, H, W).

        Returns:
            Tensor: Mask (N, 1, H, W) of 0 / 1 in ``feat``'s dtype.
        """
        generator = torch.Generator(device=feat.device)
        generator.manual_seed(
            mask_draw_seed(self.mask_seed, self.mask_step, get_rank()))
        self.mask_step += 1
        return mgd_random_mask(feat, self.lambda_mgd, generator)

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
            mask = self.next_mask(student)
            generated = self.generation(student * mask)
            sq_err = (generated - teacher).square().sum()
        return self.alpha_mgd * sq_err / student.shape[0]
