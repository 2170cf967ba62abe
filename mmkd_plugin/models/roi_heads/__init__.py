# Copyright (c) mmkd_plugin contributors.
from .crosskd_roi_head import CrossKDRoIHead
from .distill_roi_head import DistillRoIHead

__all__ = ['DistillRoIHead', 'CrossKDRoIHead']
