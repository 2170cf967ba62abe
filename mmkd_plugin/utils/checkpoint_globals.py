# Copyright (c) mmkd_plugin contributors.
"""Let ``torch.load(weights_only=True)`` read mmengine/mmdet checkpoints.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and
refuses any pickled global not on an allow-list. Checkpoints written by
mmengine's runner carry a few harmless non-tensor objects (the message hub's
``HistoryBuffer`` with numpy arrays, numpy scalars); this module allow-lists
exactly those, so mmengine's ``load_checkpoint``, ``--resume`` and
``tools/test.py`` work while unpickling stays restricted. Nothing here ever
falls back to ``weights_only=False``.
"""
import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


def _numpy_globals() -> list:
    """numpy objects that pickled arrays and scalars refer to."""
    try:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(name)) for name in (
        'float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8',
        'uint8', 'bool')]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


CHECKPOINT_GLOBALS = [HistoryBuffer, *_numpy_globals()]


def allow_checkpoint_globals() -> None:
    """Add :data:`CHECKPOINT_GLOBALS` to torch's weights-only allow-list."""
    torch.serialization.add_safe_globals(CHECKPOINT_GLOBALS)
