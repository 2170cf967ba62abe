# Copyright (c) mmkd_plugin contributors.
from .distill_roi_head import DistillRoIHead

__all__ = ['DistillRoIHead']
