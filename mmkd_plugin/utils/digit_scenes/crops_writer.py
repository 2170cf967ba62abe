# Copyright (c) mmkd_plugin contributors.
"""Writing of the digit-crops classification dataset (10 classes).

The classification proxy of the project: every image holds ONE whole
handwritten digit, its label, on a cluttered background. The clutter is
what keeps a small CNN from solving it trivially:

- the textured background of :func:`.drawing.render_background`;
- up to ``max_distractors`` OTHER digits cut by the image border, so only
  a part of each is visible (the target is the only whole digit);
- ``stroke_layers`` layers of random ink lines and arcs drawn over the
  digit (each layer 0..4 strokes, in a colour of the digits' polarity);
- pixel noise of standard deviation ``noise_std``.

The target's size (a fraction of the image side), position and colour are
random. Glyphs, backgrounds, strokes and blending are those of
:mod:`.drawing`; glyph pools are :func:`.coco_writer.split_source_pools`,
so no val or holdout glyph is ever seen in training. Layout written by
:func:`generate_digit_crops` (mmpretrain's ``CustomDataset`` format)::

    out_dir/
        meta.json                  # generation parameters (skip marker)
        classes.txt                # '0' .. '9', one per line
        annotations/train.txt      # lines 'train/000000.png 3'
        annotations/val.txt
        annotations/holdout.txt    # only when num_holdout > 0
        train/000000.png ...
        val/000000.png ...
        holdout/000000.png ...

Paths in the annotation files are relative to ``out_dir``. Labels are
balanced: image ``i`` of a split shows the digit ``i % 10``. Every image
uses its own random generator seeded by ``(seed, split, index)``, so the
same seed gives identical bytes, and image ``i`` does not depend on the
size of any split. Holdout mirrors val (its own glyph pool) and is meant
for choosing settings. This module imports neither mmdet nor mmpretrain.
"""
import os
from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import numpy as np
from PIL import Image

from .coco_writer import (DIGIT_CLASSES, POOL_SPLIT_SEED, SPLIT_CODES,
                          split_source_pools)
from .drawing import (GENERATOR_VERSION, blend_glyph, ink_extent,
                      load_digit_glyphs, pick_digit_colour,
                      render_background, render_glyph_alpha, render_strokes)
from .split_files import (output_paths, outputs_up_to_date,
                          remove_stale_images, remove_stale_split, write_json)

# Bump when the crop composition changes so that outputs are regenerated.
CROPS_VERSION = 1
SPLITS = ('train', 'val', 'holdout')
# Default images per split. 20000 evaluation crops: on 2000, the binomial
# standard error of an accuracy near 92% (0.6 points) is as large as the
# effects measured.
DEFAULT_CROP_SPLITS = (10000, 20000, 20000)
# Glyph width over height, as in the scenes.
ASPECT_RANGE = (0.75, 1.1)
# Opacity of a stroke layer drawn over the digit.
STROKE_OPACITY_RANGE = (0.5, 0.9)


@dataclass(frozen=True)
class CropDifficulty:
    """How hard the crops are; every field is a command-line option of
    ``tools/make_digit_crops.py``.

    Args:
        digit_size_range (tuple[float, float]): Range of the target glyph's
            height as a fraction of the image side, in (0, 1]. Smaller
            digits mean fewer pixels per stroke (harder).
        max_distractors (int): Most partial other digits per image (0 to
            this, uniformly), each cut by the border.
        distractor_visible_range (tuple[float, float]): Visible fraction of
            a distractor's ink box across the border that cuts it, in
            (0, 1). Closer to 1: distractors look more like whole digits.
        stroke_layers (int): Layers of random ink strokes over the digit.
        noise_std (float): Standard deviation of the pixel noise (images in
            [0, 1]).
    """

    digit_size_range: Tuple[float, float] = (0.5, 0.9)
    max_distractors: int = 2
    distractor_visible_range: Tuple[float, float] = (0.25, 0.6)
    stroke_layers: int = 2
    noise_std: float = 0.05

    def check(self) -> None:
        """Raise ValueError naming the first option out of range."""
        low, high = self.digit_size_range
        if not 0 < low <= high <= 1:
            raise ValueError('digit crops: need 0 < min <= max <= 1 for '
                             f'digit_size_range, got {low}, {high}.')
        low, high = self.distractor_visible_range
        if not 0 < low <= high < 1:
            raise ValueError('digit crops: need 0 < min <= max < 1 for '
                             f'distractor_visible_range, got {low}, {high}.')
        for name in ('max_distractors', 'stroke_layers'):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f'digit crops: {name} must be an integer '
                                 f'>= 0, got {value!r}.')
        if not self.noise_std >= 0:
            raise ValueError('digit crops: noise_std must be >= 0, got '
                             f'{self.noise_std}.')


def crop_label(index: int) -> int:
    """Return the digit shown by image ``index`` of any split (balanced)."""
    return index % len(DIGIT_CLASSES)


def compose_crop(rng: np.random.Generator, glyphs: np.ndarray,
                 labels: np.ndarray, pool: np.ndarray, label: int,
                 image_size: int, difficulty: CropDifficulty) -> np.ndarray:
    """Draw one crop: background, partial distractors, the target, strokes.

    Args:
        rng (np.random.Generator): Per-image random generator.
        glyphs (np.ndarray): All glyphs, (N, 8, 8) in [0, 1].
        labels (np.ndarray): Digit label of every glyph.
        pool (np.ndarray): Glyph indices this split may use.
        label (int): The digit to show whole.
        image_size (int): Side of the square image in pixels.
        difficulty (CropDifficulty): Clutter settings.

    Returns:
        np.ndarray: The uint8 (H, W, 3) image.
    """
    dark = bool(rng.random() < 0.5)
    image = render_background(rng, image_size, dark)
    others = pool[labels[pool] != label]
    for _ in range(int(rng.integers(0, difficulty.max_distractors + 1))):
        alpha, extent = _random_glyph(rng, glyphs[rng.choice(others)],
                                      image_size, difficulty)
        left, top = _cut_position(rng, extent, image_size,
                                  difficulty.distractor_visible_range)
        blend_glyph(image, alpha, left, top, pick_digit_colour(rng, dark))
    target = rng.choice(pool[labels[pool] == label])
    alpha, extent = _random_glyph(rng, glyphs[target], image_size, difficulty)
    left, top = _inside_position(rng, extent, image_size)
    blend_glyph(image, alpha, left, top, pick_digit_colour(rng, dark))
    for _ in range(difficulty.stroke_layers):
        mask = render_strokes(rng, image_size)
        mask = mask * rng.uniform(*STROKE_OPACITY_RANGE)
        blend_glyph(image, mask, 0, 0, pick_digit_colour(rng, dark))
    image += rng.normal(0.0, difficulty.noise_std, size=image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _random_glyph(rng: np.random.Generator, glyph: np.ndarray,
                  image_size: int, difficulty: CropDifficulty
                  ) -> Tuple[np.ndarray, Tuple[int, int, int, int]]:
    """Render a glyph at a random size; return its mask and ink box."""
    height = max(4, round(rng.uniform(*difficulty.digit_size_range) *
                          image_size))
    width = max(4, round(height * rng.uniform(*ASPECT_RANGE)))
    alpha = render_glyph_alpha(glyph, height, width)
    extent = ink_extent(alpha)
    if extent is None:  # no sklearn glyph is blank; guards a bad glyph set
        raise ValueError('digit crops: a glyph rendered without ink.')
    return alpha, extent


def _inside_position(rng: np.random.Generator, extent: Tuple[int, ...],
                     image_size: int) -> Tuple[int, int]:
    """Top-left of the glyph patch that puts its ink at a random place
    inside the image (centred, cut evenly, when larger than the image)."""
    x0, y0, x1, y1 = extent
    corner = []
    for ink_size in (x1 - x0 + 1, y1 - y0 + 1):
        slack = image_size - ink_size
        corner.append(int(rng.integers(0, slack + 1)) if slack >= 0 else
                      slack // 2)
    return corner[0] - x0, corner[1] - y0


def _cut_position(rng: np.random.Generator, extent: Tuple[int, ...],
                  image_size: int,
                  visible_range: Tuple[float, float]) -> Tuple[int, int]:
    """Top-left of the glyph patch that lets a random border cut its ink
    box, leaving a fraction in ``visible_range`` of it across that border
    inside the image."""
    x0, y0, x1, y1 = extent
    ink_left, ink_top = _inside_position(rng, extent, image_size)
    ink_left, ink_top = ink_left + x0, ink_top + y0
    side = int(rng.integers(0, 4))  # left, right, top, bottom
    ink_size = x1 - x0 + 1 if side < 2 else y1 - y0 + 1
    visible = max(1, round(rng.uniform(*visible_range) * ink_size))
    start = visible - ink_size if side % 2 == 0 else image_size - visible
    if side < 2:
        ink_left = start
    else:
        ink_top = start
    return ink_left - x0, ink_top - y0


def _write_split(split: str, count: int, seed: int, out_dir: str,
                 glyphs: np.ndarray, labels: np.ndarray, pool: np.ndarray,
                 image_size: int, difficulty: CropDifficulty) -> None:
    """Render and write the images and the annotation file of a split."""
    image_dir = os.path.join(out_dir, split)
    os.makedirs(image_dir, exist_ok=True)
    remove_stale_images(image_dir, count)
    lines = []
    for index in range(count):
        rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
        label = crop_label(index)
        pixels = compose_crop(rng, glyphs, labels, pool, label, image_size,
                              difficulty)
        file_name = f'{split}/{index:06d}.png'
        Image.fromarray(pixels).save(os.path.join(out_dir, file_name))
        lines.append(f'{file_name} {label}\n')
    with open(os.path.join(out_dir, 'annotations', f'{split}.txt'), 'w',
              encoding='utf-8') as file:
        file.writelines(lines)


def _check_sizes(split_sizes: Dict[str, int], image_size: int) -> None:
    """Raise ValueError for split sizes or an image size out of range."""
    for split, count in split_sizes.items():
        least = 0 if split == 'holdout' else 1
        if not isinstance(count, (int, np.integer)) or count < least:
            raise ValueError(f'digit crops: num_{split} must be an integer '
                             f'>= {least}, got {count!r}.')
    if not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ValueError('digit crops: image_size must be an integer >= 16, '
                         f'got {image_size!r}.')


def generate_digit_crops(out_dir: str,
                         num_train: int = DEFAULT_CROP_SPLITS[0],
                         num_val: int = DEFAULT_CROP_SPLITS[1],
                         num_holdout: int = DEFAULT_CROP_SPLITS[2],
                         image_size: int = 32,
                         seed: int = 0,
                         difficulty: CropDifficulty = CropDifficulty()
                         ) -> Dict[str, str]:
    """Generate the digit-crops dataset, or reuse an identical one.

    When ``out_dir/meta.json`` holds the same parameters and every expected
    file exists, nothing is written. ``meta.json`` is written last, so an
    interrupted run is redone.

    Args:
        out_dir (str): Dataset root folder.
        num_train (int): Number of training images (>= 1).
        num_val (int): Number of validation images (>= 1).
        num_holdout (int): Number of holdout images (0 writes none).
        image_size (int): Side of the square images in pixels (>= 16).
        seed (int): Base random seed.
        difficulty (CropDifficulty): Clutter settings.

    Returns:
        dict[str, str]: ``root``, ``meta``, ``classes`` and, per non-empty
        split, ``<split>_ann`` (annotation file) and ``<split>_img_dir``.

    Raises:
        ValueError: If a size or a difficulty option is out of range.
    """
    split_sizes = dict(train=num_train, val=num_val, holdout=num_holdout)
    _check_sizes(split_sizes, image_size)
    difficulty.check()
    params = dict(crops_version=CROPS_VERSION,
                  generator_version=GENERATOR_VERSION, image_size=image_size,
                  seed=seed, pool_split_seed=POOL_SPLIT_SEED,
                  **{f'num_{split}': count
                     for split, count in split_sizes.items()},
                  **{key: list(value) if isinstance(value, tuple) else value
                     for key, value in asdict(difficulty).items()})
    out_dir = os.fspath(out_dir)
    paths = output_paths(out_dir, split_sizes, 'txt',
                         extra_files=('classes.txt', ))
    if outputs_up_to_date(paths, params, split_sizes):
        return paths

    if os.path.exists(paths['meta']):
        os.remove(paths['meta'])
    os.makedirs(os.path.join(out_dir, 'annotations'), exist_ok=True)
    with open(paths['classes'], 'w', encoding='utf-8') as file:
        file.write(''.join(f'{name}\n' for name in DIGIT_CLASSES))
    glyphs, labels = load_digit_glyphs()
    pools = split_source_pools(labels)
    for split, count in split_sizes.items():
        if count > 0:
            _write_split(split, count, seed, out_dir, glyphs, labels,
                         pools[split], image_size, difficulty)
        else:
            remove_stale_split(out_dir, split, 'txt')
    write_json(paths['meta'], params)
    return paths

