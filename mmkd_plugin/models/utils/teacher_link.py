# Copyright (c) mmkd_plugin contributors.
"""Protocol for student modules that distil inside their own loss."""
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor


class TeacherLinkMixin:
    """Mixin for student heads that compare themselves with the teacher.

    Head-level methods (LD, DKD, KD) need the student's own assignment or
    sampling, which exists only inside the head's ``loss``. A head that
    mixes this in is linked to the teacher by ``DistillationDetector`` when
    the detector is built (:meth:`link_teacher`, where a subclass checks
    compatibility), and during each training step it can read the
    teacher's neck features (:attr:`teacher_feats`) and run the teacher's
    matching head under :meth:`teacher_forward_context`.

    The teacher is held outside the module tree, so it never becomes a
    parameter of the student.
    """

    _linked_teacher: Optional[Tuple[nn.Module]] = None
    _teacher_feats: Optional[Tuple[Tensor, ...]] = None
    _teacher_autocast: Optional[torch.dtype] = None

    def link_teacher(self, teacher: nn.Module) -> None:
        """Remember the teacher detector; subclasses validate it here.

        Args:
            teacher (nn.Module): The frozen teacher detector.
        """
        self._linked_teacher = (teacher, )

    def distill_loss_keys(self) -> List[str]:
        """Log keys of the distillation losses this head adds to its loss
        dict; each head that mixes this in names its own.

        Returns:
            list[str]: The keys.
        """
        raise NotImplementedError(
            f'{type(self).__name__} must name its distillation loss keys.')

    @property
    def teacher(self) -> nn.Module:
        """nn.Module: The linked teacher detector."""
        if self._linked_teacher is None:
            raise RuntimeError(
                f'{type(self).__name__} distils from a teacher: use it as a '
                'head of the student inside a DistillationDetector.')
        return self._linked_teacher[0]

    @property
    def teacher_feats(self) -> Tuple[Tensor, ...]:
        """tuple[Tensor]: The teacher's neck outputs of the current step."""
        if self._teacher_feats is None:
            raise RuntimeError(
                f'{type(self).__name__}: no teacher features for this step; '
                'its loss must be called from DistillationDetector.loss.')
        return self._teacher_feats

    @contextmanager
    def teacher_step(self, teacher_feats: Tuple[Tensor, ...],
                     autocast: Optional[torch.dtype]) -> Iterator[None]:
        """Expose the teacher's features for the duration of one step."""
        self._teacher_feats, self._teacher_autocast = teacher_feats, autocast
        try:
            yield
        finally:
            self._teacher_feats = None

    @contextmanager
    def teacher_forward_context(self, device_type: str) -> Iterator[None]:
        """``no_grad`` plus the detector's teacher precision.

        The teacher runs under the detector's ``teacher_autocast`` if set,
        else in float32 with autocast off (also under ``--amp``).
        """
        with torch.no_grad(), teacher_autocast(device_type,
                                               self._teacher_autocast):
            yield


def teacher_autocast(device_type: str,
                     dtype: Optional[torch.dtype]) -> torch.autocast:
    """Autocast context of a teacher forward: ``dtype``, or off if None.

    Args:
        device_type (str): ``'cuda'`` or ``'cpu'``.
        dtype (torch.dtype, optional): Autocast dtype of the teacher.

    Returns:
        torch.autocast: The context manager.
    """
    if dtype is None:
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=dtype)
