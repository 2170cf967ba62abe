# Copyright (c) mmkd_plugin contributors.
"""Generate the digit-crops classification dataset (10 classes, 32 px).

One whole digit per image on a cluttered background, with partial other
digits at the borders and ink strokes over it (see
mmkd_plugin/utils/digit_scenes/crops_writer.py). The configs in
configs/classification/digits/ read it from data/digit_crops. Example::

    python tools/make_digit_crops.py --out data/digit_crops

Harder: smaller digits, more clutter, e.g.
``--digit-size 0.4 0.7 --max-distractors 3 --stroke-layers 3``; easier:
``--max-distractors 0 --stroke-layers 0 --noise-std 0``.
"""
import argparse
import os
import sys
import time

try:
    from mmkd_plugin.utils.digit_scenes import (DEFAULT_CROP_SPLITS,
                                                CropDifficulty,
                                                generate_digit_crops)
except ImportError:  # not installed: run from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    from mmkd_plugin.utils.digit_scenes import (DEFAULT_CROP_SPLITS,
                                                CropDifficulty,
                                                generate_digit_crops)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    defaults = CropDifficulty()
    parser = argparse.ArgumentParser(
        description='Draw sklearn digits on clutter as a classification '
        'dataset (mmpretrain CustomDataset format).')
    parser.add_argument('--out', default='data/digit_crops',
                        help='dataset root folder')
    num_train, num_val, num_holdout = DEFAULT_CROP_SPLITS
    parser.add_argument('--num-train', type=int, default=num_train)
    parser.add_argument('--num-val', type=int, default=num_val)
    parser.add_argument('--num-holdout', type=int, default=num_holdout,
                        help='images of the split for choosing settings')
    parser.add_argument('--image-size', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--digit-size', type=float, nargs=2, metavar=('MIN', 'MAX'),
        default=defaults.digit_size_range,
        help='digit height as a fraction of the image side')
    parser.add_argument('--max-distractors', type=int,
                        default=defaults.max_distractors,
                        help='most partial other digits per image')
    parser.add_argument(
        '--distractor-visible', type=float, nargs=2, metavar=('MIN', 'MAX'),
        default=defaults.distractor_visible_range,
        help='visible fraction of a distractor across its border')
    parser.add_argument('--stroke-layers', type=int,
                        default=defaults.stroke_layers,
                        help='layers of 0-4 ink strokes over the digit')
    parser.add_argument('--noise-std', type=float,
                        default=defaults.noise_std,
                        help='pixel noise (images in [0, 1])')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Generate (or reuse) the dataset and print where it is."""
    args = parse_args(argv)
    difficulty = CropDifficulty(
        digit_size_range=tuple(args.digit_size),
        max_distractors=args.max_distractors,
        distractor_visible_range=tuple(args.distractor_visible),
        stroke_layers=args.stroke_layers, noise_std=args.noise_std)
    meta_path = os.path.join(args.out, 'meta.json')
    meta_before = (os.path.getmtime(meta_path)
                   if os.path.isfile(meta_path) else None)
    start = time.perf_counter()
    try:
        paths = generate_digit_crops(
            args.out, num_train=args.num_train, num_val=args.num_val,
            num_holdout=args.num_holdout, image_size=args.image_size,
            seed=args.seed, difficulty=difficulty)
    except ValueError as err:
        raise SystemExit(f'make_digit_crops: {err}')
    reused = meta_before is not None and \
        os.path.getmtime(meta_path) == meta_before
    action = 'up to date, nothing written' if reused else \
        f'written in {time.perf_counter() - start:.1f} s'
    print(f'digit crops at {paths["root"]}: {action}')
    for split in ('train', 'val', 'holdout'):
        if f'{split}_ann' in paths:
            with open(paths[f'{split}_ann'], encoding='utf-8') as file:
                count = sum(1 for _ in file)
            print(f'  {split}: {paths[f"{split}_ann"]} ({count} images)')
    print(f'  parameters: {paths["meta"]}')


if __name__ == '__main__':
    main()
