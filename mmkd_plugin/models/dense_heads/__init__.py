# Copyright (c) mmkd_plugin contributors.
from .crosskd_head import (CrossKDATSSHead, CrossKDFCOSHead, CrossKDGFLHead,
                           CrossKDHeadMixin, CrossKDRetinaHead)
from .ld_gfl_head import LDGFLHead

__all__ = [
    'LDGFLHead', 'CrossKDHeadMixin', 'CrossKDGFLHead', 'CrossKDATSSHead',
    'CrossKDFCOSHead', 'CrossKDRetinaHead'
]
