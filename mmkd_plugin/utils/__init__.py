# Copyright (c) mmkd_plugin contributors.
from .checkpoint_globals import CHECKPOINT_GLOBALS, allow_checkpoint_globals
from .checkpoint_keys import (STUDENT_PREFIX, TEACHER_PREFIX,
                              DistillationState, split_distillation_state)
from .export import export_student, student_state_dict

__all__ = [
    'CHECKPOINT_GLOBALS', 'allow_checkpoint_globals', 'export_student',
    'student_state_dict', 'STUDENT_PREFIX', 'TEACHER_PREFIX',
    'DistillationState', 'split_distillation_state'
]
