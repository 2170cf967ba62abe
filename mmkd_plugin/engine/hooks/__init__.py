# Copyright (c) mmkd_plugin contributors.
from .teacher_sanity_hook import TeacherSanityHook

__all__ = ['TeacherSanityHook']
