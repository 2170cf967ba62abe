# Copyright (c) mmkd_plugin contributors.
"""Evaluate a checkpoint with the config's evaluator (COCO mAP for a
detector, accuracy for a classifier: the config's ``default_scope`` decides).

For a distillation config only the student predicts. Examples::

    python tools/test.py configs/cwd_retina_r101_r18.py work_dirs/x/epoch_12.pth
    python tools/test.py configs/classification/digits/resnet18_digits.py \
        work_dirs/resnet18_digits/epoch_20.pth
"""
import argparse
import os.path as osp

import mmkd_plugin  # noqa: F401  (registers components, config prefix)
from mmkd_plugin.utils.launch import (add_launch_args, build_runner,
                                      destroy_process_group, load_config)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test a detector or classifier')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='dir to save evaluation metrics')
    parser.add_argument('--out', help='dump predictions to this .pkl file')
    parser.add_argument(
        '--show-dir', help='draw the predictions on each test image and save '
        'them in this folder (a detector\'s: relative to the run\'s '
        'work_dir/timestamp; a classifier\'s: as given)')
    add_launch_args(parser)
    return parser.parse_args()


# Per default scope: the metric that dumps predictions, and the visualization
# hook of the config's default_hooks, the name of its output-folder argument
# and the settings that make it draw every test image.
DUMP_METRICS = dict(mmdet='DumpDetResults', mmpretrain='DumpResults')
VISUALIZATION_HOOKS = dict(
    mmdet=('DetVisualizationHook', 'test_out_dir', dict(draw=True)),
    mmpretrain=('VisualizationHook', 'out_dir', dict(enable=True,
                                                     interval=1)))


def task_scope(cfg) -> str:
    """The config's ``default_scope`` if this tool knows it, else mmdet's."""
    scope = cfg.get('default_scope', 'mmdet')
    return scope if scope in DUMP_METRICS else 'mmdet'


def draw_predictions(cfg, show_dir: str) -> None:
    """Turn on the config's visualization hook, saving to ``show_dir``."""
    hook_type, folder, settings = VISUALIZATION_HOOKS[task_scope(cfg)]
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise SystemExit('--show-dir needs a visualization hook in the '
                         "config's default_hooks, e.g. visualization=dict("
                         f"type='{hook_type}') (the OpenMMLab configs have "
                         'one).')
    hook.update(settings, **{folder: show_dir})


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit('--out must be a .pkl or .pickle file')
        cfg.test_evaluator = [
            *(cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else
              [cfg.test_evaluator]),
            dict(type=DUMP_METRICS[task_scope(cfg)],
                 out_file_path=args.out)
        ]
    if args.show_dir is not None:
        draw_predictions(cfg, args.show_dir)
    try:
        build_runner(cfg).test()
    finally:
        destroy_process_group()


if __name__ == '__main__':
    main()
