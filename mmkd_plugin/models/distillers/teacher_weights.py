# Copyright (c) mmkd_plugin contributors.
"""Whose weights go where: the teacher's checkpoint, teacher modules copied
into the student, and a distiller's checkpoint keys on load and save."""
import torch.nn as nn
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from ...utils.checkpoint_keys import (STUDENT_PREFIX, TEACHER_PREFIX,
                                      split_distillation_state)
from ...utils.read_checkpoint import read_checkpoint


def load_teacher_checkpoint(teacher: nn.Module, filename: str,
                            strict: bool) -> None:
    """Load ``filename`` into the teacher.

    Args:
        teacher (nn.Module): The teacher.
        filename (str): ``teacher_ckpt``, a path or URL.
        strict (bool): Raise on missing or unexpected keys.
    """
    checkpoint = read_checkpoint(filename, 'teacher_ckpt')
    try:
        _load_checkpoint_to_model(teacher, checkpoint, strict=strict,
                                  logger='current')
    except RuntimeError as err:
        raise ValueError(
            f'teacher_ckpt "{filename}" does not match the teacher model '
            f'(set teacher_ckpt_strict=False to load it anyway): {err}'
        ) from err


def copy_teacher_module(teacher: nn.Module, student: nn.Module,
                        prefix: str) -> None:
    """Copy the teacher's weights under ``prefix`` into the student.

    Args:
        teacher (nn.Module): The teacher.
        student (nn.Module): The student; its weights under ``prefix`` must
            have the teacher's names and shapes.
        prefix (str): A module prefix such as ``'neck'`` or ``'bbox_head'``.
    """
    teacher_state = {
        key: value
        for key, value in teacher.state_dict().items()
        if key == prefix or key.startswith(prefix + '.')
    }
    if not teacher_state:
        raise ValueError('student_init_from_teacher: the teacher has no '
                         f'weights under "{prefix}".')
    student_state = student.state_dict()
    bad = [
        f'{key}: teacher {tuple(value.shape)}, student '
        f'{tuple(student_state[key].shape) if key in student_state else "missing"}'  # noqa: E501
        for key, value in teacher_state.items()
        if key not in student_state or student_state[key].shape != value.shape
    ]
    if bad:
        raise ValueError('student_init_from_teacher: cannot copy '
                         f'"{prefix}" from teacher to student; '
                         'mismatched weights:\n  ' + '\n  '.join(bad))
    student.load_state_dict(teacher_state, strict=False)


def route_checkpoint_keys(distiller: nn.Module, state_dict: dict,
                          prefix: str) -> None:
    """Send each key of a checkpoint being loaded where it belongs.

    ``teacher.*`` keys load into the teacher. A checkpoint without
    ``student.*`` keys is taken for a plain checkpoint of the student (e.g.
    ``load_from`` or an exported student) and its keys get the ``student.``
    prefix. A checkpoint that matches no student weight (by name and shape)
    raises a ValueError.

    Args:
        distiller (nn.Module): The distiller (with ``student`` and
            ``teacher``) whose ``load_state_dict`` is running.
        state_dict (dict): The state dict being loaded, changed in place.
        prefix (str): The distiller's prefix in ``state_dict``.
    """
    own_keys = [k for k in state_dict if k.startswith(prefix)]
    parts = split_distillation_state(state_dict, prefix)
    for key in own_keys:
        del state_dict[key]
    if parts.teacher:
        distiller.teacher.load_state_dict(parts.teacher)
    student_prefix = prefix + STUDENT_PREFIX
    state_dict.update((student_prefix + key, value)
                      for key, value in parts.student.items())
    state_dict.update((prefix + key, value)
                      for key, value in parts.others.items())
    student_state = distiller.student.state_dict(prefix=student_prefix)
    matched = [
        key for key, value in state_dict.items()
        if key in student_state
        and getattr(value, 'shape', None) == student_state[key].shape
    ]
    if not matched:
        own_keys = [k for k in own_keys
                    if not k.startswith(prefix + TEACHER_PREFIX)]
        examples = ', '.join(own_keys[:3]) or 'none'
        name = type(distiller).__name__
        raise ValueError(
            f'{name}: the checkpoint matches no weight of the student '
            f'({type(distiller.student).__name__}), neither as a {name} '
            'checkpoint ("student.*" keys) nor as a plain checkpoint of '
            f'the student; its {len(own_keys)} keys start with: '
            f'{examples}.')


def add_teacher_state(distiller: nn.Module, state_dict: dict, prefix: str,
                      local_metadata: dict) -> None:
    """State-dict hook: add the teacher's weights under ``teacher.``."""
    state_dict.update(
        distiller.teacher.state_dict(prefix=prefix + TEACHER_PREFIX))
