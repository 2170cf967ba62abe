# Copyright (c) mmkd_plugin contributors.
"""Map student-normalised images to the teacher's input normalisation."""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor


class TeacherInputRenorm:
    """Re-normalise student-normalised images for a teacher whose data
    preprocessor uses another mean, std or channel order.

    Student and teacher usually share mmdet's ImageNet normalisation, and
    then this is the identity. Padded pixels (0 after the student's
    normalisation) are mapped like image pixels.

    Args:
        scale (Tensor, optional): Per-channel factor (1, C, 1, 1).
        shift (Tensor, optional): Per-channel offset (1, C, 1, 1).
        flip_channels (bool): Swap RGB/BGR before scaling.
    """

    def __init__(self, scale: Optional[Tensor], shift: Optional[Tensor],
                 flip_channels: bool) -> None:
        self.scale, self.shift, self.flip_channels = scale, shift, \
            flip_channels

    @classmethod
    def from_configs(cls, student_preprocessor: nn.Module,
                     teacher_cfg: Optional[dict]) -> 'TeacherInputRenorm':
        """Build from the student's preprocessor and the teacher's config."""
        if teacher_cfg is None or not getattr(student_preprocessor,
                                              '_enable_normalize', False):
            return cls(None, None, False)
        s_mean = student_preprocessor.mean.view(-1)
        s_std = student_preprocessor.std.view(-1)
        t_mean = torch.tensor(teacher_cfg.get('mean', s_mean.tolist()),
                              dtype=torch.float32)
        t_std = torch.tensor(teacher_cfg.get('std', s_std.tolist()),
                             dtype=torch.float32)
        s_swap = student_preprocessor._channel_conversion
        t_swap = bool(teacher_cfg.get('bgr_to_rgb', False)
                      or teacher_cfg.get('rgb_to_bgr', False))
        flip = s_swap != t_swap
        raw_mean = s_mean.flip(0) if flip else s_mean
        raw_std = s_std.flip(0) if flip else s_std
        if not flip and torch.equal(s_mean, t_mean) and torch.equal(
                s_std, t_std):
            return cls(None, None, False)
        # x_t = (x_s * std_s + mean_s - mean_t) / std_t, per channel.
        scale = (raw_std / t_std).view(1, -1, 1, 1)
        shift = ((raw_mean - t_mean) / t_std).view(1, -1, 1, 1)
        return cls(scale, shift, flip)

    def __call__(self, inputs: Tensor) -> Tensor:
        """Return ``inputs`` in the teacher's normalisation."""
        if self.scale is None:
            return inputs
        if self.flip_channels:
            inputs = inputs.flip(1)
        return inputs * self.scale.to(inputs) + self.shift.to(inputs)
