# Copyright (c) mmkd_plugin contributors.
"""Generator of the built-in digit-scenes COCO dataset.

Not a dataset class: the configs read its output with mmdet's
``CocoDataset``. ``tools/make_digit_scenes.py`` is its command line.
"""
from .coco_writer import (DIGIT_CLASSES, digit_category_id,
                          generate_digit_scenes)

__all__ = ['DIGIT_CLASSES', 'digit_category_id', 'generate_digit_scenes']
