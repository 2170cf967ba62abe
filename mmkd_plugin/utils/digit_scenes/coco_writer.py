# Copyright (c) mmkd_plugin contributors.
"""Writing of the digit-scenes COCO dataset: splits, file layout, json.

Scenes are drawn by :func:`.drawing.compose_scene`; this module decides
which glyphs and seed each image gets and writes the files. Layout written
by :func:`generate_digit_scenes`::

    out_dir/
        meta.json                  # generation parameters (skip marker)
        annotations/train.json     # COCO detection annotations
        annotations/val.json
        annotations/holdout.json   # only when num_holdout > 0
        train/000000.png ...
        val/000000.png ...
        holdout/000000.png ...

Category ids follow the COCO convention and start at 1: the digit ``d`` has
``category_id == d + 1`` and name ``str(d)``. Each annotation also stores
``source_index``, the index of the glyph in ``load_digits()``.

The 1797 sklearn glyphs are split once, per class and with a fixed seed
(independent of ``seed``), into disjoint source pools: 70% train, 10%
holdout, 20% val. The train pool therefore does not change with
``num_holdout`` or ``seed``, and no val glyph is ever seen in training.
The holdout split draws scenes the same way as train but from its own
glyph pool, so it mirrors val and is meant for choosing hyper-parameters.

Every image uses its own random generator seeded by ``(seed, split,
index)``, so image ``i`` of a split does not depend on the size of any
split, and the same seed gives identical pixels and byte-identical json.

This module does not import mmdet.
"""
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from .drawing import (GENERATOR_VERSION, compose_scene,
                      default_digit_size_range, load_digit_glyphs)
from .split_files import (output_paths, outputs_up_to_date,
                          remove_stale_images, remove_stale_split, write_json)

DIGIT_CLASSES: Tuple[str, ...] = tuple(str(digit) for digit in range(10))

# Seed of the glyph pool split; fixed so pools never depend on ``seed``.
POOL_SPLIT_SEED = 20240917
POOL_FRACTIONS = {'train': 0.7, 'holdout': 0.1, 'val': 0.2}
SPLIT_CODES = {'train': 0, 'val': 1, 'holdout': 2}
def digit_category_id(digit: int) -> int:
    """Return the COCO category id of a digit (ids start at 1).

    Args:
        digit (int): Digit value in 0..9.

    Returns:
        int: ``digit + 1``.
    """
    return int(digit) + 1


def split_source_pools(labels: np.ndarray) -> Dict[str, np.ndarray]:
    """Split glyph indices into disjoint train/holdout/val pools per class.

    Args:
        labels (np.ndarray): Digit label of every glyph.

    Returns:
        dict[str, np.ndarray]: Sorted glyph indices for ``'train'``,
        ``'holdout'`` and ``'val'``.
    """
    rng = np.random.default_rng(POOL_SPLIT_SEED)
    pools: Dict[str, List[np.ndarray]] = {name: [] for name in POOL_FRACTIONS}
    for digit in range(10):
        indices = rng.permutation(np.flatnonzero(labels == digit))
        num_val = round(len(indices) * POOL_FRACTIONS['val'])
        num_holdout = round(len(indices) * POOL_FRACTIONS['holdout'])
        pools['val'].append(indices[:num_val])
        pools['holdout'].append(indices[num_val:num_val + num_holdout])
        pools['train'].append(indices[num_val + num_holdout:])
    return {
        name: np.sort(np.concatenate(parts))
        for name, parts in pools.items()
    }


def build_coco_dict(split: str, records: List[Tuple[str, List[dict]]],
                    image_size: int, params: dict) -> dict:
    """Build the COCO detection dict for one split.

    Args:
        split (str): Split name, stored in ``info``.
        records (list): ``(file_name, objects)`` per image in id order, where
            ``objects`` come from :func:`compose_scene`.
        image_size (int): Side of the square images.
        params (dict): Generation parameters, stored in ``info``.

    Returns:
        dict: COCO dict with ``info``, ``licenses``, ``images``,
        ``annotations`` and ``categories``. Image and annotation ids start
        at 1; bboxes are ``[x, y, w, h]`` in whole pixels.
    """
    images, annotations = [], []
    for image_id, (file_name, objects) in enumerate(records, start=1):
        images.append(dict(id=image_id, file_name=file_name,
                           width=image_size, height=image_size))
        for obj in objects:
            x0, y0, x1, y1 = obj['box']
            box_w, box_h = x1 - x0 + 1, y1 - y0 + 1
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id,
                category_id=digit_category_id(obj['digit']),
                bbox=[x0, y0, box_w, box_h], area=box_w * box_h, iscrowd=0,
                source_index=obj['source_index']))
    categories = [dict(id=digit_category_id(int(name)), name=name,
                       supercategory='digit') for name in DIGIT_CLASSES]
    info = dict(description=f'digit_scenes {split} split', version=str(
        GENERATOR_VERSION), params=params)
    return dict(info=info, licenses=[], images=images,
                annotations=annotations, categories=categories)


def generate_split(split: str, count: int, seed: int, out_dir: str,
                   glyphs: np.ndarray, labels: np.ndarray, pool: np.ndarray,
                   image_size: int, num_digits_range: Tuple[int, int],
                   digit_size_range: Tuple[int, int], max_iou: float,
                   params: dict) -> None:
    """Render and write all images and the COCO json of one split.

    Args:
        split (str): ``'train'``, ``'val'`` or ``'holdout'``.
        count (int): Number of images.
        seed (int): Base seed.
        out_dir (str): Dataset root.
        glyphs (np.ndarray): All glyphs.
        labels (np.ndarray): Label of every glyph.
        pool (np.ndarray): Glyph indices this split may use.
        image_size (int): Side of the square images.
        num_digits_range (tuple[int, int]): Inclusive digits per image.
        digit_size_range (tuple[int, int]): Inclusive glyph height range.
        max_iou (float): Largest IoU allowed between two digit boxes.
        params (dict): Generation parameters, stored in the json ``info``.
    """
    image_dir = os.path.join(out_dir, split)
    os.makedirs(image_dir, exist_ok=True)
    remove_stale_images(image_dir, count)
    records = []
    for index in range(count):
        rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
        pixels, objects = compose_scene(rng, glyphs, labels, pool,
                                        image_size, num_digits_range,
                                        digit_size_range, max_iou)
        file_name = f'{index:06d}.png'
        Image.fromarray(pixels).save(
            os.path.join(image_dir, file_name))
        records.append((file_name, objects))
    coco = build_coco_dict(split, records, image_size, params)
    write_json(os.path.join(out_dir, 'annotations', f'{split}.json'), coco)


def generate_digit_scenes(out_dir: str,
                          num_train: int = 2000,
                          num_val: int = 300,
                          image_size: int = 128,
                          min_digits: int = 2,
                          max_digits: int = 5,
                          seed: int = 0,
                          num_holdout: int = 0,
                          digit_size_range: Optional[Tuple[int, int]] = None,
                          max_iou: float = 0.3) -> Dict[str, str]:
    """Generate the digit-scenes COCO dataset, or reuse an identical one.

    When ``out_dir/meta.json`` holds the same parameters and every expected
    file exists, nothing is written. ``meta.json`` is written last, so an
    interrupted run is redone.

    Args:
        out_dir (str): Dataset root folder.
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        image_size (int): Side of the square images in pixels.
        min_digits (int): Fewest digits per image.
        max_digits (int): Most digits per image.
        seed (int): Base random seed of the scenes.
        num_holdout (int): Number of holdout images (0 writes none).
        digit_size_range (tuple[int, int], optional): Inclusive glyph height
            range in pixels. Defaults to 12..48 at 128 px, scaled with
            ``image_size``.
        max_iou (float): Largest IoU allowed between two digit boxes.

    Returns:
        dict[str, str]: ``root``, ``meta`` and, per non-empty split,
        ``<split>_ann`` (COCO json) and ``<split>_img_dir`` (PNG folder).
    """
    if not 1 <= min_digits <= max_digits:
        raise ValueError('need 1 <= min_digits <= max_digits, got '
                         f'{min_digits}, {max_digits}')
    if digit_size_range is None:
        digit_size_range = default_digit_size_range(image_size)
    digit_size_range = (int(digit_size_range[0]), int(digit_size_range[1]))
    split_sizes = dict(train=num_train, val=num_val, holdout=num_holdout)
    params = dict(generator_version=GENERATOR_VERSION, num_train=num_train,
                  num_val=num_val, num_holdout=num_holdout,
                  image_size=image_size, min_digits=min_digits,
                  max_digits=max_digits, seed=seed,
                  digit_size_range=list(digit_size_range),
                  max_iou=max_iou, pool_split_seed=POOL_SPLIT_SEED)
    out_dir = os.fspath(out_dir)
    paths = output_paths(out_dir, split_sizes, 'json')
    if outputs_up_to_date(paths, params, split_sizes):
        return paths

    if os.path.exists(paths['meta']):
        os.remove(paths['meta'])
    os.makedirs(os.path.join(out_dir, 'annotations'), exist_ok=True)
    glyphs, labels = load_digit_glyphs()
    pools = split_source_pools(labels)
    for split, count in split_sizes.items():
        if count > 0:
            generate_split(split, count, seed, out_dir, glyphs, labels,
                           pools[split], image_size, (min_digits, max_digits),
                           digit_size_range, max_iou, params)
        else:
            remove_stale_split(out_dir, split, 'json')
    write_json(paths['meta'], params)
    return paths

