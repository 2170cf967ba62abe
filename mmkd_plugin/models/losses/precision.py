# Copyright (c) mmkd_plugin contributors.
"""Full-precision arithmetic for the feature losses under mixed precision."""
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor


@contextmanager
def full_precision(feat: Tensor) -> Iterator[torch.dtype]:
    """Disable autocast and yield the dtype a loss should compute in.

    Args:
        feat (Tensor): The student feature; its device picks the autocast
            context to disable.

    Yields:
        torch.dtype: float32 for low-precision inputs (float16, bfloat16);
        float64 inputs stay float64.
    """
    with torch.autocast(feat.device.type, enabled=False):
        yield torch.promote_types(feat.dtype, torch.float32)
