# Copyright (c) mmkd_plugin contributors.
"""Capture the outputs of named submodules during a model's forward."""
from contextlib import contextmanager
from functools import partial
from typing import Dict, Iterator, Sequence, Tuple

import torch.nn as nn
from torch import Tensor


def get_submodule_or_raise(model: nn.Module, path: str, owner: str) -> nn.Module:
    """Return ``model.get_submodule(path)`` with a readable error.

    Args:
        model (nn.Module): Model to search.
        path (str): Dotted module path such as ``'neck'`` or
            ``'backbone.layer4'``.
        owner (str): ``'student'`` or ``'teacher'``, used in the message.

    Returns:
        nn.Module: The submodule.
    """
    try:
        return model.get_submodule(path)
    except AttributeError:
        top_level = ', '.join(name for name, _ in model.named_children())
        raise ValueError(
            f'distill: the {owner} ({type(model).__name__}) has no module '
            f'"{path}"; its top-level modules are: {top_level}.') from None


def as_feature_tuple(output) -> Tuple[Tensor, ...]:
    """Normalise a module output to a tuple of tensors (one per level)."""
    if isinstance(output, Tensor):
        return (output, )
    return tuple(output)


class FeatureRecorder:
    """Records the outputs of named submodules while recording is on.

    The detectors' ``loss`` methods compute features internally and return
    only losses, so their intermediate outputs are not reachable through
    explicit calls without re-implementing each detector's ``loss``; a
    forward hook reads them without changing what the detector computes.

    Args:
        model (nn.Module): The model whose submodules are recorded.
        module_paths (Sequence[str]): Dotted paths of the submodules.
        owner (str): ``'student'`` or ``'teacher'``, used in error messages.
    """

    def __init__(self, model: nn.Module, module_paths: Sequence[str],
                 owner: str) -> None:
        self._outputs: Dict[str, Tuple[Tensor, ...]] = {}
        self._active = False
        for path in dict.fromkeys(module_paths):
            module = get_submodule_or_raise(model, path, owner)
            module.register_forward_hook(partial(self._save, path))

    def _save(self, path: str, module: nn.Module, inputs, output) -> None:
        if self._active:
            self._outputs[path] = as_feature_tuple(output)

    @contextmanager
    def recording(self) -> Iterator[Dict[str, Tuple[Tensor, ...]]]:
        """Record during the ``with`` block; yields the dict being filled."""
        self._outputs = {}
        self._active = True
        try:
            yield self._outputs
        finally:
            self._active = False
