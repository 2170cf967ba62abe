# Copyright (c) mmkd_plugin contributors.
"""The crop settings of a training pipeline, as FKD stores and checks
them."""
from typing import List, Sequence, Tuple

CROP_TYPE = 'RandomResizedCrop'
FLIP_TYPE = 'RandomFlip'
REPLAY_TYPE = 'FKDReplayCrop'
CROP_DEFAULTS = dict(crop_ratio_range=(0.08, 1.0),
                     aspect_ratio_range=(3. / 4., 4. / 3.), max_attempts=10,
                     interpolation='bilinear', backend='cv2')


def _as_hw(scale) -> List[int]:
    if isinstance(scale, int):
        return [scale, scale]
    return [int(scale[0]), int(scale[1])]


def crop_settings(crop_cfg: dict, flip_prob: float) -> dict:
    """The settings of a ``RandomResizedCrop`` config and a flip
    probability, as the store's metadata holds them (lists, floats)."""
    settings = dict(CROP_DEFAULTS)
    settings.update({k: v for k, v in crop_cfg.items() if k in CROP_DEFAULTS})
    settings['scale'] = _as_hw(crop_cfg['scale'])
    settings['crop_ratio_range'] = [float(v)
                                    for v in settings['crop_ratio_range']]
    settings['aspect_ratio_range'] = [
        float(v) for v in settings['aspect_ratio_range']
    ]
    settings['max_attempts'] = int(settings['max_attempts'])
    settings['flip_prob'] = float(flip_prob)
    return settings


def split_train_pipeline(
        pipeline: Sequence[dict]) -> Tuple[List[dict], dict, float]:
    """Split a training pipeline at its random-resized crop.

    Args:
        pipeline (list[dict]): Transform configs, e.g. ``[Load,
            RandomResizedCrop, RandomFlip, ..., PackInputs]``.

    Returns:
        tuple: The transforms before the crop (run as they are before each
        crop; they must be deterministic, e.g. loading), the crop's config,
        and the horizontal flip probability of a ``RandomFlip`` in the
        pipeline (0 without one).

    Raises:
        ValueError: No ``RandomResizedCrop``, or more than one.
    """
    types = [step.get('type') for step in pipeline]
    if types.count(CROP_TYPE) != 1:
        raise ValueError(
            f'FKD: the training pipeline needs exactly one {CROP_TYPE} (the '
            f'crops the teacher labels), got transforms {types}.')
    crop_at = types.index(CROP_TYPE)
    flip_prob = 0.0
    for step in pipeline[crop_at + 1:]:
        if step.get('type') != FLIP_TYPE:
            continue
        prob = step.get('prob')
        if step.get('direction', 'horizontal') != 'horizontal' or \
                not isinstance(prob, (int, float)):
            raise ValueError(
                f'FKD: only a horizontal {FLIP_TYPE} with one probability '
                f'can be stored with the crops, got {dict(step)}.')
        flip_prob = float(prob)
    return list(pipeline[:crop_at]), dict(pipeline[crop_at]), flip_prob
