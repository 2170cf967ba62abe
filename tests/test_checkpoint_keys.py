# Copyright (c) mmkd_plugin contributors.
"""split_distillation_state: the one place that says which checkpoint keys
are the student's and which the teacher's."""
import torch

from mmkd_plugin.utils import split_distillation_state


def _state(*keys):
    return {key: torch.full((1, ), float(i)) for i, key in enumerate(keys)}


def test_distillation_checkpoint_is_split_by_prefix():
    state = _state('student.backbone.w', 'distill_losses.fgd.w',
                   'teacher.neck.w', 'student.neck.w')
    parts = split_distillation_state(state)
    assert parts.is_distillation
    assert list(parts.student) == ['backbone.w', 'neck.w']
    assert parts.student['neck.w'] is state['student.neck.w']
    assert list(parts.teacher) == ['neck.w']
    assert parts.teacher['neck.w'] is state['teacher.neck.w']
    assert list(parts.others) == ['distill_losses.fgd.w']
    assert len(state) == 4  # the input is left as it was


def test_plain_checkpoint_is_all_student_except_teacher_keys():
    state = _state('backbone.w', 'teacher.neck.w', 'neck.w')
    parts = split_distillation_state(state)
    assert not parts.is_distillation
    assert list(parts.student) == ['backbone.w', 'neck.w']
    assert list(parts.teacher) == ['neck.w']
    assert not parts.others


def test_prefix_limits_the_split_to_the_detector_entries():
    state = _state('model.student.backbone.w', 'model.teacher.neck.w',
                   'ema.student.backbone.w', 'model.distill_losses.w')
    parts = split_distillation_state(state, 'model.')
    assert parts.is_distillation
    assert list(parts.student) == ['backbone.w']
    assert list(parts.teacher) == ['neck.w']
    assert list(parts.others) == ['distill_losses.w']
    assert not split_distillation_state(state, 'nothing.').student
