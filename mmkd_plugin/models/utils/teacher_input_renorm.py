# Copyright (c) mmkd_plugin contributors.
"""Map student-normalised images to the teacher's input normalisation."""
from typing import Optional, Sequence, Tuple

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
        """Build from the student's preprocessor and the teacher's config.

        A side without ``mean`` (``std``) subtracts 0 (divides by 1), as a
        preprocessor without normalisation does (YOLOX, RTMDet-style
        ``mean=None``). A teacher config without a data preprocessor at all
        shares the student's.

        Args:
            student_preprocessor (nn.Module): The student's (and detector's)
                built data preprocessor.
            teacher_cfg (dict, optional): The teacher's data preprocessor
                config.

        Returns:
            TeacherInputRenorm: The mapping (the identity when both sides
            normalise alike).
        """
        if teacher_cfg is None:
            return cls(None, None, False)
        s_mean, s_std = _student_mean_std(student_preprocessor)
        t_mean = _as_channels(teacher_cfg.get('mean'), 0.0)
        t_std = _as_channels(teacher_cfg.get('std'), 1.0)
        s_swap = bool(getattr(student_preprocessor, '_channel_conversion',
                              False))
        t_swap = bool(teacher_cfg.get('bgr_to_rgb', False)
                      or teacher_cfg.get('rgb_to_bgr', False))
        flip = s_swap != t_swap
        raw_mean = s_mean.flip(0) if flip else s_mean
        raw_std = s_std.flip(0) if flip else s_std
        if not flip and torch.equal(raw_mean, t_mean) and torch.equal(
                raw_std, t_std):
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


def _as_channels(values: Optional[Sequence[float]], default: float) -> Tensor:
    """Per-channel float32 values, ``default`` for all 3 when None."""
    if values is None:
        return torch.full((3, ), default)
    return torch.tensor(values, dtype=torch.float32).view(-1)


def _student_mean_std(preprocessor: nn.Module) -> Tuple[Tensor, Tensor]:
    """Mean and std the student's preprocessor normalises with (0 and 1
    when it does not normalise)."""
    if not getattr(preprocessor, '_enable_normalize', False):
        return _as_channels(None, 0.0), _as_channels(None, 1.0)
    return (preprocessor.mean.view(-1).float().cpu(),
            preprocessor.std.view(-1).float().cpu())
