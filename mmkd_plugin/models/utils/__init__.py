# Copyright (c) mmkd_plugin contributors.
from .align_scale import align_scale
from .device_scalar import device_scalar
from .feature_recorder import (FeatureRecorder, as_feature_tuple,
                               get_submodule_or_raise)
from .model_config import resolve_model_config
from .teacher_input_renorm import TeacherInputRenorm
from .teacher_link import TeacherLinkMixin, teacher_autocast
from .training_progress import current_epoch, warmup_factor

__all__ = [
    'align_scale', 'device_scalar', 'FeatureRecorder', 'as_feature_tuple', 'get_submodule_or_raise',
    'resolve_model_config', 'TeacherInputRenorm', 'TeacherLinkMixin',
    'teacher_autocast', 'current_epoch', 'warmup_factor'
]
