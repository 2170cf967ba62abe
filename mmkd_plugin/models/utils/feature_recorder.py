# Copyright (c) mmkd_plugin contributors.
"""Capture the outputs of named submodules during a model's forward."""
from contextlib import contextmanager
from functools import partial
from typing import Dict, Iterator, List, Sequence, Tuple

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

    Every call of a module is kept: a module called once gives the levels
    of its output (a tensor is one level, a tuple such as an FPN's output
    one level per element); a module called several times per forward,
    such as a head conv shared by all FPN levels, gives the outputs of all
    its calls, in call order.

    Args:
        model (nn.Module): The model whose submodules are recorded.
        module_paths (Sequence[str]): Dotted paths of the submodules.
        owner (str): ``'student'`` or ``'teacher'``, used in error messages.
    """

    def __init__(self, model: nn.Module, module_paths: Sequence[str],
                 owner: str) -> None:
        self._owner = owner
        self._modules = {
            path: get_submodule_or_raise(model, path, owner)
            for path in dict.fromkeys(module_paths)
        }
        self._calls: Dict[str, List[Tuple[Tensor, ...]]] = {}
        self._active = False
        self.call_counts: Dict[str, int] = {}
        for path, module in self._modules.items():
            module.register_forward_hook(partial(self._save, path))

    def _save(self, path: str, module: nn.Module, inputs, output) -> None:
        if self._active:
            self._calls[path].append(as_feature_tuple(output))

    @contextmanager
    def recording(self) -> Iterator[Dict[str, Tuple[Tensor, ...]]]:
        """Record during the ``with`` block.

        Yields a dict that is filled when the block ends: module path ->
        the levels of all its calls, in call order. :attr:`call_counts`
        then holds how often each module ran.

        Raises:
            ValueError: When a recorded module never ran in the block.
        """
        self._calls = {path: [] for path in self._modules}
        levels: Dict[str, Tuple[Tensor, ...]] = {}
        self._active = True
        try:
            yield levels
        finally:
            self._active = False
        self.call_counts = {path: len(calls)
                            for path, calls in self._calls.items()}
        levels.update({
            path: tuple(feat for call in calls for feat in call)
            for path, calls in self._calls.items()
        })
        self._calls = {}
        self._raise_if_not_run()

    def _raise_if_not_run(self) -> None:
        for path, count in self.call_counts.items():
            if count == 0:
                module = self._modules[path]
                hint = (' It is a container: its forward is never called; '
                        f'name one of its children, e.g. "{path}.0".'
                        if isinstance(module, (nn.ModuleList, nn.ModuleDict))
                        else ' Choose a module on the path the forward '
                        'takes.')
                raise ValueError(
                    f'distill: the {self._owner} module "{path}" '
                    f'({type(module).__name__}) never ran in the forward, so '
                    f'it has no output to distil.{hint}')
