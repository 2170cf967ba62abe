# Copyright (c) mmkd_plugin contributors.
"""Tests of the generated digit-scenes COCO dataset."""
import itertools
import json
import os
from pathlib import Path
from typing import Dict, List

import pytest

from mmkd_plugin.utils.digit_scenes import (DIGIT_CLASSES,
                                           generate_digit_scenes)

SMALL = dict(num_train=20, num_val=8, num_holdout=6, image_size=64, seed=0)
SPLITS = ('train', 'val', 'holdout')


def load_coco(paths: Dict[str, str], split: str) -> dict:
    """Load one split's COCO json."""
    with open(paths[f'{split}_ann'], encoding='utf-8') as file:
        return json.load(file)


def annotations_by_image(coco: dict) -> Dict[int, List[dict]]:
    """Group annotations by image id (every image gets a key)."""
    grouped = {image['id']: [] for image in coco['images']}
    for ann in coco['annotations']:
        grouped[ann['image_id']].append(ann)
    return grouped


def file_mtimes(root: str) -> Dict[str, int]:
    """Return the mtime in ns of every file under ``root``."""
    return {
        str(path): path.stat().st_mtime_ns
        for path in Path(root).rglob('*') if path.is_file()
    }


def file_bytes(root: str) -> Dict[str, bytes]:
    """Return the bytes of every file under ``root`` keyed by relative path."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in Path(root).rglob('*') if path.is_file()
    }


def box_iou(box_a: List[int], box_b: List[int]) -> float:
    """IoU of two inclusive-pixel [x, y, w, h] boxes."""
    inter_w = min(box_a[0] + box_a[2], box_b[0] + box_b[2]) - max(
        box_a[0], box_b[0])
    inter_h = min(box_a[1] + box_a[3], box_b[1] + box_b[3]) - max(
        box_a[1], box_b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    return inter / (box_a[2] * box_a[3] + box_b[2] * box_b[3] - inter)


@pytest.fixture(scope='module')
def small_dataset(tmp_path_factory) -> Dict[str, str]:
    """A small dataset with all three splits, generated once per module."""
    out_dir = tmp_path_factory.mktemp('digit_scenes')
    return generate_digit_scenes(str(out_dir), **SMALL)


def test_returns_paths_that_exist(small_dataset):
    assert os.path.isfile(small_dataset['meta'])
    for split in SPLITS:
        assert os.path.isfile(small_dataset[f'{split}_ann'])
        assert os.path.isdir(small_dataset[f'{split}_img_dir'])


@pytest.mark.parametrize('split', SPLITS)
def test_json_is_valid_coco(small_dataset, split):
    coco = load_coco(small_dataset, split)
    num_images = SMALL[f'num_{split}']
    assert len(coco['images']) == num_images
    assert [cat['name'] for cat in coco['categories']] == list(DIGIT_CLASSES)
    assert [cat['id'] for cat in coco['categories']] == list(range(1, 11))
    ann_ids = [ann['id'] for ann in coco['annotations']]
    assert len(set(ann_ids)) == len(ann_ids)
    image_ids = {image['id'] for image in coco['images']}
    assert all(ann['image_id'] in image_ids for ann in coco['annotations'])
    try:
        from pycocotools.coco import COCO
    except ImportError:
        return
    api = COCO(small_dataset[f'{split}_ann'])
    assert len(api.getImgIds()) == num_images
    assert len(api.getAnnIds()) == len(coco['annotations'])
    assert sorted(api.getCatIds()) == list(range(1, 11))


@pytest.mark.parametrize('split', SPLITS)
def test_images_match_json(small_dataset, split):
    from PIL import Image
    coco = load_coco(small_dataset, split)
    for image_info in coco['images']:
        path = os.path.join(small_dataset[f'{split}_img_dir'],
                            image_info['file_name'])
        with Image.open(path) as image:
            assert image.mode == 'RGB'
            assert image.size == (image_info['width'], image_info['height'])


@pytest.mark.parametrize('split', SPLITS)
def test_boxes_inside_image_and_well_formed(small_dataset, split):
    coco = load_coco(small_dataset, split)
    sizes = {img['id']: (img['width'], img['height'])
             for img in coco['images']}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        width, height = sizes[ann['image_id']]
        assert w > 0 and h > 0
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert ann['area'] == w * h
        assert ann['iscrowd'] == 0
        assert 1 <= ann['category_id'] <= 10


@pytest.mark.parametrize('split', SPLITS)
def test_two_to_five_digits_with_bounded_overlap(small_dataset, split):
    grouped = annotations_by_image(load_coco(small_dataset, split))
    for anns in grouped.values():
        assert 2 <= len(anns) <= 5
        for ann_a, ann_b in itertools.combinations(anns, 2):
            assert box_iou(ann_a['bbox'], ann_b['bbox']) <= 0.3 + 1e-9


def test_boxes_are_tight_around_ink(small_dataset):
    """The box border rows/cols must differ from the background outside."""
    import numpy as np
    from PIL import Image
    coco = load_coco(small_dataset, 'train')
    grouped = annotations_by_image(coco)
    image_info = coco['images'][0]
    path = os.path.join(small_dataset['train_img_dir'],
                        image_info['file_name'])
    pixels = np.asarray(Image.open(path), dtype=np.float32)
    for ann in grouped[image_info['id']]:
        x, y, w, h = ann['bbox']
        crop = pixels[y:y + h, x:x + w]
        # Ink shows as strong contrast inside the box on every border line.
        spread = crop.max(axis=(0, 1)) - crop.min(axis=(0, 1))
        assert spread.max() > 60
        for line in (crop[0], crop[-1], crop[:, 0], crop[:, -1]):
            assert np.ptp(line, axis=0).max() > 20


def test_source_digits_disjoint_between_splits(small_dataset):
    sources = {
        split: {ann['source_index']
                for ann in load_coco(small_dataset, split)['annotations']}
        for split in SPLITS
    }
    for split_a, split_b in itertools.combinations(SPLITS, 2):
        assert not sources[split_a] & sources[split_b]


def test_same_seed_is_byte_identical_other_seed_differs(
        small_dataset, tmp_path):
    again = generate_digit_scenes(str(tmp_path / 'again'), **SMALL)
    assert file_bytes(again['root']) == file_bytes(small_dataset['root'])
    other = generate_digit_scenes(str(tmp_path / 'other'),
                                  **dict(SMALL, seed=1))
    for split in SPLITS:
        assert load_coco(other, split)['annotations'] != load_coco(
            small_dataset, split)['annotations']
    first_image = os.path.join('train', '000000.png')
    assert (Path(other['root'], first_image).read_bytes() !=
            Path(small_dataset['root'], first_image).read_bytes())


def test_rerun_with_same_parameters_is_noop(small_dataset):
    mtimes_before = file_mtimes(small_dataset['root'])
    paths = generate_digit_scenes(small_dataset['root'], **SMALL)
    assert paths == small_dataset
    assert file_mtimes(small_dataset['root']) == mtimes_before


def test_changed_parameters_regenerate_and_drop_stale_files(tmp_path):
    out_dir = str(tmp_path / 'scenes')
    generate_digit_scenes(out_dir, num_train=6, num_val=2, num_holdout=2,
                          image_size=48)
    paths = generate_digit_scenes(out_dir, num_train=3, num_val=2,
                                  image_size=48)
    assert sorted(os.listdir(paths['train_img_dir'])) == [
        '000000.png', '000001.png', '000002.png'
    ]
    assert 'holdout_ann' not in paths
    assert not os.path.exists(os.path.join(out_dir, 'annotations',
                                           'holdout.json'))
    with open(paths['meta'], encoding='utf-8') as file:
        assert json.load(file)['num_train'] == 3


def test_mmdet_coco_dataset_loads_it(small_dataset):
    pytest.importorskip('mmdet')
    from mmdet.datasets import CocoDataset
    coco = load_coco(small_dataset, 'train')
    dataset = CocoDataset(
        metainfo=dict(classes=DIGIT_CLASSES),
        data_root=small_dataset['root'],
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        pipeline=[],
        test_mode=False)
    assert len(dataset) == SMALL['num_train']
    grouped = annotations_by_image(coco)
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        anns = grouped[info['img_id']]
        assert os.path.isfile(info['img_path'])
        assert len(info['instances']) == len(anns)
        labels = sorted(inst['bbox_label'] for inst in info['instances'])
        assert labels == sorted(ann['category_id'] - 1 for ann in anns)


def test_ink_extent_is_tight_on_rendered_glyphs():
    import numpy as np
    from mmkd_plugin.utils.digit_scenes.drawing import (
        INK_THRESHOLD, ink_extent, load_digit_glyphs, render_glyph_alpha)
    glyphs, _ = load_digit_glyphs()
    for glyph in glyphs[:50]:
        for height, width in ((12, 10), (30, 27), (48, 40)):
            alpha = render_glyph_alpha(glyph, height, width)
            x0, y0, x1, y1 = ink_extent(alpha)
            ink = alpha > INK_THRESHOLD
            assert ink[y0, x0:x1 + 1].any() and ink[y1, x0:x1 + 1].any()
            assert ink[y0:y1 + 1, x0].any() and ink[y0:y1 + 1, x1].any()
            outside = ink.copy()
            outside[y0:y1 + 1, x0:x1 + 1] = False
            assert not outside.any()
            assert np.isclose(alpha.max(), 1.0)
