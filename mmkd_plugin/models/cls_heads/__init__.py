# Copyright (c) mmkd_plugin contributors.
from .soft_and_hard_label_head import SoftAndHardLabelClsHead

__all__ = ['SoftAndHardLabelClsHead']
