# Copyright (c) mmkd_plugin contributors.
from .digit_scenes import (DIGIT_CLASSES, digit_category_id,
                           generate_digit_scenes)

__all__ = ['DIGIT_CLASSES', 'digit_category_id', 'generate_digit_scenes']
