# Copyright (c) mmkd_plugin contributors.
"""Let ``torch.load(weights_only=True)`` read mmengine/mmdet checkpoints.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True`` and
refuses any pickled global not on an allow-list. Checkpoints written by
mmengine's runner carry a few harmless non-tensor objects in their message
hub: ``HistoryBuffer`` objects holding numpy arrays and scalars, whose state
refers to the buffer's statistics methods as ``getattr(HistoryBuffer,
'mean')``. This module allow-lists exactly those globals (measured on a
checkpoint written by mmengine 0.10.7's runner), so ``load_checkpoint``,
``--resume`` and ``tools/test.py`` work while unpickling stays restricted.

``builtins.getattr`` itself is never allowed (with it a pickle can walk to
``__globals__`` and run code); a stand-in registered under that name
resolves only ``HistoryBuffer``'s registered statistics methods. Nothing
here ever falls back to ``weights_only=False``.
"""
import pickle
from typing import Callable

import torch
from mmengine.logging.history_buffer import HistoryBuffer

try:  # numpy < 2
    from numpy.core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
import numpy as np

BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_method(owner: type, name: str) -> Callable:
    """Stand-in for ``getattr`` when unpickling: HistoryBuffer methods only.

    Args:
        owner (type): Must be ``HistoryBuffer``.
        name (str): A statistics method registered on ``HistoryBuffer``.

    Returns:
        Callable: ``getattr(HistoryBuffer, name)``.
    """
    allowed = set(BUILTIN_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if owner is not HistoryBuffer or name not in allowed:
        raise pickle.UnpicklingError(
            f'checkpoint asks for getattr({owner!r}, {name!r}); only '
            'HistoryBuffer statistics methods are allowed.')
    return getattr(HistoryBuffer, name)


# numpy rebuilds an array's dtype through the dtype's class.
NUMPY_DTYPE_CLASSES = [
    type(np.dtype(name)) for name in ('float64', 'float32', 'float16',
                                      'int64', 'int32', 'uint8', 'bool')
]

CHECKPOINT_GLOBALS = [
    HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype,
    *NUMPY_DTYPE_CLASSES, (history_buffer_method, 'builtins.getattr')
]


def allow_checkpoint_globals() -> None:
    """Add :data:`CHECKPOINT_GLOBALS` to torch's weights-only allow-list."""
    torch.serialization.add_safe_globals(CHECKPOINT_GLOBALS)
