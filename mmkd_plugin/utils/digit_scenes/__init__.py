# Copyright (c) mmkd_plugin contributors.
"""Generators of the built-in digit datasets.

Not dataset classes: the configs read their output with mmdet's
``CocoDataset`` (digit scenes, detection; ``tools/make_digit_scenes.py``)
and mmpretrain's ``CustomDataset`` (digit crops, classification;
``tools/make_digit_crops.py``).
"""
from .coco_writer import (DIGIT_CLASSES, digit_category_id,
                          generate_digit_scenes)
from .crops_writer import (DEFAULT_CROP_SPLITS, CropDifficulty,
                           generate_digit_crops)

__all__ = [
    'DIGIT_CLASSES', 'digit_category_id', 'generate_digit_scenes',
    'DEFAULT_CROP_SPLITS', 'CropDifficulty', 'generate_digit_crops'
]
