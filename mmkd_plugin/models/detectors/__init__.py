# Copyright (c) mmkd_plugin contributors.
from .distillation_detector import DistillationDetector

__all__ = ['DistillationDetector']
