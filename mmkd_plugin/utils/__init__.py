# Copyright (c) mmkd_plugin contributors.
from .checkpoint_globals import CHECKPOINT_GLOBALS, allow_checkpoint_globals
from .export import export_student, student_state_dict

__all__ = [
    'CHECKPOINT_GLOBALS', 'allow_checkpoint_globals', 'export_student',
    'student_state_dict'
]
