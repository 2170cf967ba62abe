# Copyright (c) mmkd_plugin contributors.
from .distillation_classifier import DistillationClassifier

__all__ = ['DistillationClassifier']
