# Copyright (c) mmkd_plugin contributors.
"""Time whole training epochs of several configs, data loading included.

``tools/benchmark.py`` times a model step on a synthetic batch; this tool
trains each config for ``--epochs`` epochs on its real dataset with
mmengine's ``Runner`` (validation and checkpoints off) and prints, per
config, the wall time per epoch, the median step and data time, and the
ratio of each to the first config's. It answers e.g. whether an FKD
student (stored labels, no teacher) trains as fast as the plain student
and how much online KD costs::

    python tools/benchmark_epoch.py \\
        configs/classification/digits/resnet18-w4_digits.py \\
        configs/classification/fkd/fkd_resnet18-w4_digits.py \\
        configs/classification/digits/kd_resnet18_resnet18-w4_digits.py \\
        --teacher-ckpt work_dirs/resnet18_digits/epoch_20.pth

Configs run one after another in this process; keep the machine otherwise
idle while it runs. A config timed right after another runs a few percent
slower or faster than when timed first (the allocator, caches and the
other processes' phases change): ``--repeats N`` times every config N
times, the order reversed on every other repeat (A B, B A, A B, ...), and
prints the median of each timing and the range of the per-repeat ratios.

Epochs are counted as FKD's authors count them: with k crops of each
decoded image per step (``FKDMultiCrop``), one pass over the data counts
as k epochs, so ``--epochs`` passes are timed and the wall time is
reported per counted epoch, which holds the samples of a plain epoch.
"""
import argparse
import inspect
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import List, Optional

from mmengine.config import Config, DictAction

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
try:
    import mmkd_plugin  # noqa: F401
except ImportError:  # not installed: run from a source checkout
    sys.path.insert(0, REPO_ROOT)
    import mmkd_plugin  # noqa: F401,F811


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+',
                        help='epoch-based configs; ratios are to the first')
    parser.add_argument('--epochs', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=1,
                        help='time every config this many times, in '
                        'alternating order; report medians')
    parser.add_argument('--teacher-ckpt',
                        help='model.teacher_ckpt of the configs that have a '
                        'teacher')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, help='options for every config')
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        parser.error('--epochs and --repeats must be >= 1')
    for config in args.configs:
        if not osp.isfile(config):
            parser.error(f'config not found: {config}')
    return args


def timing_config(path: str, args: argparse.Namespace, work_dir: str):
    """``path`` set up to train ``args.epochs`` epochs without validation
    or checkpoints.

    Raises:
        ValueError: The config trains by iterations.
    """
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(args.cfg_options)
    if not cfg.train_cfg.get('by_epoch', False) and \
            cfg.train_cfg.get('type') != 'EpochBasedTrainLoop':
        raise ValueError(f'{path}: trains by iterations; this tool times '
                         'epochs.')
    if 'teacher_ckpt' in cfg.model:
        cfg.model.teacher_ckpt = args.teacher_ckpt
    cfg.train_cfg.max_epochs = args.epochs
    cfg.train_cfg.val_interval = args.epochs + 1
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = work_dir
    # Runners built in the same second would share one MessageHub (and its
    # timings) under mmengine's timestamped default name.
    cfg.experiment_name = f'benchmark_epoch_{osp.basename(work_dir)}'
    return cfg


def crops_per_image(cfg: Config) -> int:
    """The crops each loaded training image gives (``num_crops`` of an
    ``FKDMultiCrop`` in the training pipeline; 1 without one)."""
    from mmkd_plugin.fkd import FKDMultiCrop
    default = inspect.signature(FKDMultiCrop).parameters['num_crops'].default
    for step in cfg.train_dataloader.dataset.get('pipeline', []):
        if step.get('type') == 'FKDMultiCrop':
            return step.get('num_crops', default)
    return 1


def time_config(path: str, args: argparse.Namespace, work_dir: str) -> dict:
    """Train ``path`` for ``args.epochs`` passes; return seconds per
    counted epoch, crops per image, steps per pass and median step / data
    seconds (mmengine's iteration timer)."""
    from mmengine.runner import Runner
    cfg = timing_config(path, args, work_dir)
    crops = crops_per_image(cfg)
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    epoch_s = (time.perf_counter() - start) / (args.epochs * crops)
    hub = runner.message_hub
    step_s = statistics.median(hub.get_scalar('train/time').data[0])
    data_s = statistics.median(hub.get_scalar('train/data_time').data[0])
    steps = runner.train_loop.max_iters // args.epochs
    return dict(config=path, epoch_s=epoch_s, crops=crops, steps=steps,
                step_s=step_s, data_s=data_s)


def summarise(repeats: List[List[dict]]) -> List[dict]:
    """One row per config from its timings in every repeat: the median of
    each timing, and the per-repeat ratios to the first config's timing of
    the same repeat (``epoch_ratios``, ``step_ratios``)."""
    rows = []
    for index, config in enumerate(repeats[0]):
        runs = [repeat[index] for repeat in repeats]
        row = dict(config=config['config'], steps=config['steps'],
                   crops=config['crops'])
        for key in ('epoch_s', 'step_s', 'data_s'):
            row[key] = statistics.median(run[key] for run in runs)
        for key, name in (('epoch_s', 'epoch_ratios'),
                          ('step_s', 'step_ratios')):
            row[name] = [run[key] / repeat[0][key]
                         for run, repeat in zip(runs, repeats)]
        rows.append(row)
    return rows


def _ratio(row: dict, first: dict, key: str, name: str) -> str:
    """The ratio of medians, and the range of the per-repeat ratios when
    there are several."""
    text = f'{row[key] / first[key]:.3f}'
    if len(row[name]) > 1:
        text += f' ({min(row[name]):.3f}-{max(row[name]):.3f})'
    return text


def markdown(rows: List[dict]) -> str:
    """The rows as a table, with ratios to the first row.

    The epoch is the counted one: with k crops of each image per step
    (FKD's ``FKDMultiCrop``), one pass over the data (``steps / pass``)
    counts as k epochs.
    """
    first = rows[0]
    lines = ['| config | s / epoch | ratio | median step s | ratio | '
             'median data s | crops / image | steps / pass |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
    for row in rows:
        lines.append(
            f'| {osp.basename(row["config"])} | {row["epoch_s"]:.1f} | '
            f'{_ratio(row, first, "epoch_s", "epoch_ratios")} | '
            f'{row["step_s"]:.4f} | '
            f'{_ratio(row, first, "step_s", "step_ratios")} | '
            f'{row["data_s"]:.4f} | {row["crops"]} | {row["steps"]} |')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    repeats = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = list(enumerate(args.configs))
            if repeat % 2:
                order.reverse()
            timings = {
                index: time_config(config, args,
                                   osp.join(tmp, f'{repeat}_{index}'))
                for index, config in order
            }
            repeats.append([timings[index] for index in sorted(timings)])
    rows = summarise(repeats)
    medians = '' if args.repeats == 1 else (
        f', medians of {args.repeats} repeats in alternating order '
        '(ratio ranges in brackets)')
    print(f'\n{args.epochs} epoch(s) per config{medians}\n\n' +
          markdown(rows))
    return rows


if __name__ == '__main__':
    main()
