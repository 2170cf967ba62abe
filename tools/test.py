# Copyright (c) mmkd_plugin contributors.
"""Evaluate a checkpoint (COCO mAP via the config's evaluator).

For a distillation config only the student predicts. Example::

    python tools/test.py configs/cwd_retina_r101_r18.py work_dirs/x/epoch_12.pth
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmkd_plugin  # noqa: F401  (registers components, config prefix)
from mmkd_plugin.utils.launch import apply_launcher


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='dir to save evaluation metrics')
    parser.add_argument('--out', help='dump predictions to this .pkl file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    apply_launcher(cfg, args.launcher, args.config, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit('--out must be a .pkl or .pickle file')
        cfg.test_evaluator = [
            *(cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else
              [cfg.test_evaluator]),
            dict(type='DumpDetResults', out_file_path=args.out)
        ]
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()
