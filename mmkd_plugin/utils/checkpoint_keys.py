# Copyright (c) mmkd_plugin contributors.
"""Which weights of a DistillationDetector checkpoint belong to whom."""
from collections import OrderedDict
from typing import Mapping, NamedTuple

STUDENT_PREFIX = 'student.'
TEACHER_PREFIX = 'teacher.'


class DistillationState(NamedTuple):
    """A checkpoint's state dict sorted by model.

    Attributes:
        student (OrderedDict): The student's weights, keys relative to it.
        teacher (OrderedDict): The teacher's weights, keys relative to it
            (empty unless the run had ``save_teacher_in_ckpt``).
        others (OrderedDict): The detector's other weights (e.g.
            ``distill_losses.*``), keys relative to the detector.
        is_distillation (bool): Whether it has ``student.*`` keys; if not,
            it is a plain checkpoint of the student (``load_from``, an
            exported student) and all its non-teacher keys are the
            student's.
    """
    student: OrderedDict
    teacher: OrderedDict
    others: OrderedDict
    is_distillation: bool


def split_distillation_state(state: Mapping,
                             prefix: str = '') -> DistillationState:
    """Split the entries under ``prefix`` into student, teacher and others.

    Args:
        state (Mapping): A state dict; entries outside ``prefix`` are
            ignored.
        prefix (str): The detector's own prefix in ``state`` (``''`` for a
            checkpoint of the detector itself).

    Returns:
        DistillationState: The parts, prefixes removed.
    """
    own = OrderedDict((key[len(prefix):], value)
                      for key, value in state.items()
                      if key.startswith(prefix))
    teacher = _take(own, TEACHER_PREFIX)
    is_distillation = any(key.startswith(STUDENT_PREFIX) for key in own)
    if not is_distillation:
        return DistillationState(own, teacher, OrderedDict(), False)
    student = _take(own, STUDENT_PREFIX)
    return DistillationState(student, teacher, own, True)


def _take(state: OrderedDict, prefix: str) -> OrderedDict:
    """Remove the entries under ``prefix`` from ``state``; return them with
    the prefix removed."""
    keys = [key for key in state if key.startswith(prefix)]
    return OrderedDict((key[len(prefix):], state.pop(key)) for key in keys)
