# Copyright (c) mmkd_plugin contributors.
"""Random-resized crop boxes for FKD: drawn once, stored normalised,
replayed pixel-exactly."""
import math
from typing import Sequence, Tuple

import mmcv
import numpy as np

Box = Tuple[int, int, int, int]  # (top, left, height, width) in pixels


def crop_rng(seed: int, image_index: int) -> np.random.Generator:
    """The generator of one image's crops: a function of (seed, index)
    only, so any process order or sharding gives the same crops."""
    return np.random.default_rng([seed, image_index])


def sample_crop_box(rng: np.random.Generator, height: int, width: int,
                    crop_ratio_range: Sequence[float],
                    aspect_ratio_range: Sequence[float],
                    max_attempts: int = 10) -> Box:
    """Draw one random-resized crop box, with the distribution of
    mmpretrain's ``RandomResizedCrop`` (area share uniform in
    ``crop_ratio_range``, log aspect ratio uniform in
    ``aspect_ratio_range``, position uniform; the centre crop clipped to
    the ratio range after ``max_attempts`` failures).

    Returns:
        tuple: (top, left, height, width) in pixels.
    """
    area = height * width
    log_ratios = (math.log(aspect_ratio_range[0]),
                  math.log(aspect_ratio_range[1]))
    for _ in range(max_attempts):
        target_area = rng.uniform(*crop_ratio_range) * area
        aspect_ratio = math.exp(rng.uniform(*log_ratios))
        crop_w = int(round(math.sqrt(target_area * aspect_ratio)))
        crop_h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return top, left, crop_h, crop_w
    image_ratio = width / height
    crop_h, crop_w = height, width
    if image_ratio < min(aspect_ratio_range):
        crop_h = int(round(width / min(aspect_ratio_range)))
    elif image_ratio > max(aspect_ratio_range):
        crop_w = int(round(height * max(aspect_ratio_range)))
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def normalise_boxes(boxes: np.ndarray, height: int,
                    width: int) -> np.ndarray:
    """Pixel boxes (M, 4) (top, left, h, w) -> divided by (H, W, H, W),
    float32."""
    scale = np.array([height, width, height, width], dtype=np.float64)
    return (np.asarray(boxes, dtype=np.float64) / scale).astype(np.float32)


def pixel_box(box: np.ndarray, height: int, width: int) -> Box:
    """A normalised box back in pixels of an (H, W) image (exact for a
    float32 box of an image of the same size)."""
    top, left, crop_h, crop_w = box.tolist()  # exact float32 -> float
    top, left = round(top * height), round(left * width)
    crop_h, crop_w = round(crop_h * height), round(crop_w * width)
    crop_h = min(max(crop_h, 1), height)
    crop_w = min(max(crop_w, 1), width)
    top = min(max(top, 0), height - crop_h)
    left = min(max(left, 0), width - crop_w)
    return top, left, crop_h, crop_w


def render_crop(img: np.ndarray, box: Box, flip: bool,
                scale: Sequence[int], interpolation: str = 'bilinear',
                backend: str = 'cv2') -> np.ndarray:
    """Cut ``box`` out of ``img``, resize it to ``scale`` (h, w) and flip it
    horizontally if asked: what ``RandomResizedCrop`` + ``RandomFlip`` do
    for that box and flag."""
    top, left, crop_h, crop_w = box
    crop = img[top:top + crop_h, left:left + crop_w]
    crop = mmcv.imresize(crop, (scale[1], scale[0]),
                         interpolation=interpolation, backend=backend)
    return mmcv.imflip(crop, direction='horizontal') if flip else crop
