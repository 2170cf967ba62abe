# Copyright (c) mmkd_plugin contributors.
"""Per-channel re-standardisation of a feature to another's statistics."""
import torch
from torch import Tensor


def align_scale(student: Tensor, teacher: Tensor, eps: float = 1e-6) -> Tensor:
    """Standardise ``student`` per channel and give it ``teacher``'s
    per-channel mean and standard deviation.

    CrossKD's feature alignment before the student's feature enters the
    teacher's layers (Wang et al., "CrossKD: Cross-Head Knowledge
    Distillation for Object Detection", CVPR 2024,
    https://arxiv.org/abs/2306.11369). For every channel ``c``, with
    statistics over (N, H, W) jointly and the unbiased standard deviation
    (divisor N*H*W - 1)::

        out = (s - mean_s) / (std_s + eps) * std_t + mean_t

    Gradients flow through the student's statistics; the teacher's are
    taken as constants (detached).

    Args:
        student (Tensor): Student feature (N, C, H, W).
        teacher (Tensor): Teacher feature (N', C, H', W') at the same point;
            only its per-channel statistics are used.
        eps (float): Added to the student's standard deviation.
            Defaults to 1e-6.

    Returns:
        Tensor: The re-scaled student feature, shape of ``student``.
    """
    if student.dim() != 4 or teacher.dim() != 4 or \
            student.shape[1] != teacher.shape[1]:
        raise ValueError(
            'align_scale expects (N, C, H, W) features with the same C, got '
            f'student {tuple(student.shape)} and teacher '
            f'{tuple(teacher.shape)}.')
    dims = (0, 2, 3)
    s_mean = student.mean(dim=dims, keepdim=True)
    s_std = student.std(dim=dims, keepdim=True)
    with torch.no_grad():
        t_mean = teacher.mean(dim=dims, keepdim=True)
        t_std = teacher.std(dim=dims, keepdim=True)
    return (student - s_mean) / (s_std + eps) * t_std + t_mean
