# Copyright (c) mmkd_plugin contributors.
"""Train a detector or a classifier (distilled or not) with mmengine's
runner; the config's ``default_scope`` decides the task.

Same arguments as mmdet's and mmpretrain's tools/train.py. Examples::

    python tools/train.py configs/cwd_retina_r101_r18.py
    tools/dist_train.sh configs/fgd_retina_r101_r18.py 8
    python tools/train.py configs/classification/digits/resnet18_digits.py
"""
import argparse

from mmengine.config import Config

import mmkd_plugin  # noqa: F401  (registers components, config prefix)
from mmkd_plugin.utils.launch import (add_launch_args, build_runner,
                                      destroy_process_group, load_config)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a detector or classifier')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='dir to save logs and checkpoints')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or from the latest one in the '
        'work dir when no path is given')
    add_launch_args(parser)
    return parser.parse_args()


def build_config(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line options."""
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in \
                cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs "auto_scale_lr = '
                             'dict(base_batch_size=...)" in the config.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main() -> None:
    args = parse_args()
    cfg = build_config(args)
    try:
        build_runner(cfg).train()
    finally:
        destroy_process_group()


if __name__ == '__main__':
    main()
