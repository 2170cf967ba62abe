# Copyright (c) mmkd_plugin contributors.
from .ld_gfl_head import LDGFLHead

__all__ = ['LDGFLHead']
