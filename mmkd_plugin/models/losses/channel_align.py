# Copyright (c) mmkd_plugin contributors.
"""Channel alignment shared by the feature losses that adapt channels."""
import torch.nn as nn


def build_channel_align(student_channels: int,
                        teacher_channels: int,
                        bias: bool = True) -> nn.Module:
    """Return a 1x1 conv from student to teacher channels, or Identity.

    Args:
        student_channels (int): Channels of the student feature.
        teacher_channels (int): Channels of the teacher feature.
        bias (bool): Give the conv a bias. Defaults to True.

    Returns:
        nn.Module: ``nn.Conv2d(student_channels, teacher_channels, 1)`` when
        the channel counts differ, else ``nn.Identity()``.
    """
    if student_channels == teacher_channels:
        return nn.Identity()
    return nn.Conv2d(student_channels, teacher_channels, kernel_size=1,
                     bias=bias)
