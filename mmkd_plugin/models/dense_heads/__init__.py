# Copyright (c) mmkd_plugin contributors.
from .bckd_gfl_head import BCKDGFLHead
from .ld_gfl_head import LDGFLHead

__all__ = ['BCKDGFLHead', 'LDGFLHead']
