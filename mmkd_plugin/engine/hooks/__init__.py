# Copyright (c) mmkd_plugin contributors.
from .stop_distill_hook import StopDistillHook
from .teacher_sanity_hook import TeacherSanityHook

__all__ = ['StopDistillHook', 'TeacherSanityHook']
