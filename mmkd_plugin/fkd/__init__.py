# Copyright (c) mmkd_plugin contributors.
"""FKD (Shen and Xing, ECCV 2022): a teacher's soft labels stored with
their random crops once, replayed in training with no teacher."""
from .label_store import FKDCrops, FKDLabelStore, FKDStoreMeta
from .soft_labels import LABEL_TYPES, rebuild_soft_label

__all__ = [
    'FKDCrops', 'FKDLabelStore', 'FKDStoreMeta', 'LABEL_TYPES',
    'rebuild_soft_label'
]

try:  # the transform needs mmpretrain (and torchvision).
    import mmpretrain.datasets  # noqa: F401
except ImportError:
    pass
else:
    from .replay_crop import FKDReplayCrop  # noqa: F401
    from .multi_crop import FKDMultiCrop, fkd_multi_crop_collate  # noqa
    __all__ += ['FKDReplayCrop', 'FKDMultiCrop', 'fkd_multi_crop_collate']
