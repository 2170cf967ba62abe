# Copyright (c) mmkd_plugin contributors.
"""The files of a generated dataset root, shared by the scenes (COCO) and
crops (CustomDataset) writers: where each split goes, whether an earlier
run already wrote the same dataset, and stale images."""
import json
import os
import re
from typing import Dict, Sequence

IMAGE_NAME_PATTERN = re.compile(r'^\d{6}\.png$')


def write_json(path: str, data: dict) -> None:
    """Write json deterministically (sorted keys, fixed separators)."""
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(data, file, sort_keys=True, separators=(',', ':'))
        file.write('\n')


def remove_stale_images(image_dir: str, keep_count: int) -> None:
    """Delete generated PNGs whose index is >= ``keep_count``.

    Only names matching ``NNNNNN.png`` are touched.

    Args:
        image_dir (str): Split image folder.
        keep_count (int): Number of images of the current run.
    """
    if not os.path.isdir(image_dir):
        return
    for name in os.listdir(image_dir):
        if IMAGE_NAME_PATTERN.match(name) and int(name[:6]) >= keep_count:
            os.remove(os.path.join(image_dir, name))


def remove_stale_split(out_dir: str, split: str, ann_ext: str) -> None:
    """Remove a split's annotation file and images left by an earlier run.

    Args:
        out_dir (str): Dataset root folder.
        split (str): The split, now empty.
        ann_ext (str): Extension of its annotation file.
    """
    ann_path = os.path.join(out_dir, 'annotations', f'{split}.{ann_ext}')
    if os.path.isfile(ann_path):
        os.remove(ann_path)
    remove_stale_images(os.path.join(out_dir, split), 0)


def output_paths(out_dir: str, split_sizes: Dict[str, int], ann_ext: str,
                 extra_files: Sequence[str] = ()) -> Dict[str, str]:
    """Return the output paths of a dataset root.

    Args:
        out_dir (str): Dataset root folder.
        split_sizes (dict[str, int]): Number of images per split.
        ann_ext (str): Extension of the annotation files (``'json'``).
        extra_files (Sequence[str]): Other files at the root, e.g.
            ``'classes.txt'``, keyed by their stem.

    Returns:
        dict[str, str]: ``root``, ``meta``, the extra files and, for every
        split with at least one image, ``<split>_ann`` and
        ``<split>_img_dir``.
    """
    paths = dict(root=out_dir, meta=os.path.join(out_dir, 'meta.json'))
    for name in extra_files:
        paths[os.path.splitext(name)[0]] = os.path.join(out_dir, name)
    for split, count in split_sizes.items():
        if count > 0:
            paths[f'{split}_ann'] = os.path.join(out_dir, 'annotations',
                                                 f'{split}.{ann_ext}')
            paths[f'{split}_img_dir'] = os.path.join(out_dir, split)
    return paths


def outputs_up_to_date(paths: Dict[str, str], params: dict,
                       split_sizes: Dict[str, int]) -> bool:
    """Check whether an earlier run already wrote this exact dataset.

    Args:
        paths (dict[str, str]): Output paths from :func:`output_paths`.
        params (dict): Parameters of the requested dataset.
        split_sizes (dict[str, int]): Number of images per split.

    Returns:
        bool: True when meta.json equals ``params`` and every other file
        (extra files, annotations, images) exists.
    """
    try:
        with open(paths['meta'], encoding='utf-8') as file:
            if json.load(file) != params:
                return False
    except (OSError, ValueError):
        return False
    files = [path for key, path in paths.items()
             if key not in ('root', 'meta') and not key.endswith('_img_dir')]
    if not all(os.path.isfile(path) for path in files):
        return False
    return all(
        os.path.isfile(os.path.join(paths[f'{split}_img_dir'],
                                    f'{index:06d}.png'))
        for split, count in split_sizes.items() for index in range(count))
