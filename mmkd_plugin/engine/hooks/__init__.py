# Copyright (c) mmkd_plugin contributors.
from .stop_distill_hook import StopDistillHook

__all__ = ['StopDistillHook']
