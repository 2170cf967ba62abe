# Copyright (c) mmkd_plugin contributors.
"""Generate the digit-scenes COCO detection dataset.

The defaults make the dataset of the demo (tools/demo.py): 2000 train,
1000 val and 1000 holdout images of 64x64, seed 0 (the demo generates its
own, one folder per variant under data/demo/). Example::

    python tools/make_digit_scenes.py --out data/digit_scenes
"""
import argparse
import json
import os
import sys
import time

try:
    from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
except ImportError:  # not installed: run from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    from mmkd_plugin.utils.digit_scenes import generate_digit_scenes


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Compose sklearn digits into a COCO detection dataset.')
    parser.add_argument('--out', default='data/digit_scenes',
                        help='dataset root folder')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=1000)
    parser.add_argument('--num-holdout', type=int, default=1000,
                        help='images of the hyper-parameter holdout split')
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--min-digits', type=int, default=2)
    parser.add_argument('--max-digits', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def count_coco_entries(ann_path: str) -> str:
    """Summarise a COCO json as ``'<images> images, <boxes> boxes'``.

    Args:
        ann_path (str): Path of the COCO json.

    Returns:
        str: The summary.
    """
    with open(ann_path, encoding='utf-8') as file:
        coco = json.load(file)
    return (f"{len(coco['images'])} images, "
            f"{len(coco['annotations'])} boxes")


def main() -> None:
    """Generate (or reuse) the dataset and print what is on disk."""
    args = parse_args()
    meta_path = os.path.join(args.out, 'meta.json')
    meta_before = (os.path.getmtime(meta_path)
                   if os.path.isfile(meta_path) else None)
    start = time.perf_counter()
    paths = generate_digit_scenes(
        args.out, num_train=args.num_train, num_val=args.num_val,
        image_size=args.image_size, min_digits=args.min_digits,
        max_digits=args.max_digits, seed=args.seed,
        num_holdout=args.num_holdout)
    elapsed = time.perf_counter() - start
    reused = meta_before is not None and \
        os.path.getmtime(meta_path) == meta_before
    action = 'up to date, nothing written' if reused else \
        f'written in {elapsed:.1f} s'
    print(f'digit scenes at {paths["root"]}: {action}')
    for split in ('train', 'val', 'holdout'):
        if f'{split}_ann' in paths:
            print(f'  {split}: {paths[f"{split}_ann"]} '
                  f'({count_coco_entries(paths[f"{split}_ann"])}), '
                  f'images in {paths[f"{split}_img_dir"]}')
    print(f'  parameters: {paths["meta"]}')


if __name__ == '__main__':
    main()
