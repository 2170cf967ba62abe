# Copyright (c) mmkd_plugin contributors.
"""Soft labels rebuilt from stored top-k probabilities (FKD, Shen and Xing,
ECCV 2022)."""
import numpy as np
import torch
from torch import Tensor

LABEL_TYPES = ('marginal_smoothing', 'marginal_renorm', 'smoothing', 'hard')


def rebuild_soft_label(indices: np.ndarray, probs: np.ndarray,
                       num_classes: int,
                       label_type: str = 'marginal_smoothing') -> Tensor:
    """A C-class target distribution from a crop's top-k probabilities.

    - ``marginal_smoothing`` (the authors' default): the k probabilities at
      their classes, ``(1 - sum of the k) / (C - k)`` in every other class;
    - ``marginal_renorm``: the k probabilities, zeros elsewhere,
      L1-renormalised;
    - ``smoothing``: the top-1 probability at its class,
      ``(1 - p_top1) / (C - 1)`` elsewhere;
    - ``hard``: one-hot of the top-1 class.

    The result is divided by its sum (a no-op up to rounding, except when
    float16 storage made the k probabilities sum above 1, where the
    remainder is clamped to 0).

    Args:
        indices (np.ndarray): (..., k) classes, descending probability.
        probs (np.ndarray): (..., k) their probabilities.
        num_classes (int): C.
        label_type (str): One of :data:`LABEL_TYPES`.

    Returns:
        Tensor: (..., C) float32, rows summing to 1.
    """
    if label_type not in LABEL_TYPES:
        raise ValueError(f'FKD: label_type must be one of {LABEL_TYPES}, got '
                         f'"{label_type}".')
    if np.ndim(indices) == 1 and label_type == 'marginal_smoothing':
        return _one_marginal_smoothing(indices, probs, num_classes)
    # numpy: one crop's label is a handful of tiny array operations, each
    # several times cheaper than torch's per-op overhead in a data worker.
    index = np.asarray(indices, dtype=np.int64)
    prob = np.asarray(probs, dtype=np.float32)
    if label_type in ('smoothing', 'hard'):
        index, prob = index[..., :1], prob[..., :1]
    if label_type == 'hard':
        prob = np.ones_like(prob)
    num_other = num_classes - index.shape[-1]
    if label_type == 'marginal_renorm' or label_type == 'hard' or \
            num_other == 0:
        fill = np.zeros_like(prob[..., :1])
    else:
        fill = np.maximum(1 - prob.sum(-1, keepdims=True), 0) / num_other
    target = np.repeat(fill, num_classes, axis=-1).astype(np.float32,
                                                         copy=False)
    if target.ndim == 1:  # one crop, as in the training pipeline
        target[index] = prob
    else:
        np.put_along_axis(target, index, prob, axis=-1)
    return torch.from_numpy(target / target.sum(-1, keepdims=True))


def _one_marginal_smoothing(indices: np.ndarray, probs: np.ndarray,
                            num_classes: int) -> Tensor:
    """:func:`rebuild_soft_label` of one crop with the default label type,
    the training pipeline's case, in the fewest numpy calls (the general
    path cost 10 us a sample)."""
    prob = np.asarray(probs, dtype=np.float32)
    num_other = num_classes - prob.shape[0]
    stored_mass = float(prob.sum())
    fill = max(1.0 - stored_mass, 0.0) / num_other if num_other else 0.0
    target = np.full(num_classes, fill, dtype=np.float32)
    target[indices] = prob
    return torch.from_numpy(target / target.sum())
