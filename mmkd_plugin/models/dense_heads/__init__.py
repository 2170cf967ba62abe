# Copyright (c) mmkd_plugin contributors.
from .bckd_gfl_head import BCKDGFLHead
from .crosskd_head import (CrossKDATSSHead, CrossKDFCOSHead, CrossKDGFLHead,
                           CrossKDHeadMixin, CrossKDRetinaHead)
from .ld_gfl_head import LDGFLHead

__all__ = [
    'BCKDGFLHead', 'LDGFLHead', 'CrossKDHeadMixin', 'CrossKDGFLHead',
    'CrossKDATSSHead', 'CrossKDFCOSHead', 'CrossKDRetinaHead'
]
