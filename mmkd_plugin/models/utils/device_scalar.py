# Copyright (c) mmkd_plugin contributors.
"""0-d tensors made on the device without a host copy."""
from typing import Optional, Union

import torch
from torch import Tensor


def device_scalar(value: Union[float, Tensor], like: Tensor,
                  dtype: Optional[torch.dtype] = None) -> Tensor:
    """``value`` as a 0-d tensor on ``like``'s device (``like``'s dtype
    unless ``dtype`` is given).

    A number is written by a fill kernel: ``torch.tensor(value,
    device='cuda')`` would copy it from the host and make the host wait for
    the device at every call.

    Args:
        value (float | Tensor): A number, or a tensor (moved and cast).
        like (Tensor): Gives the device, and the dtype by default.
        dtype (torch.dtype, optional): The dtype of the result.

    Returns:
        Tensor: A 0-d tensor (or ``value`` cast, if a tensor).
    """
    dtype = like.dtype if dtype is None else dtype
    if isinstance(value, Tensor):
        return value.to(device=like.device, dtype=dtype)
    return torch.full((), value, dtype=dtype, device=like.device)
