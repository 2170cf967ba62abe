# Copyright (c) mmkd_plugin contributors.
"""The efficacy benchmark on the generated digit datasets (`make demo`).

Trains, per model family, a teacher and a narrower student baseline on
the same data and schedule, then each chosen method's distilled student,
for every seed, and reports the table (mean ± std over the seeds, gain,
share of the teacher-student gap recovered, paired per-seed differences
with the baseline and with the init-only control) and a chart. Two tasks
(mmkd_plugin/efficacy/tasks.py), one per run of this script, picked by the
methods or by ``--task``: detection on the digit scenes (COCO bbox mAP; the
default) and classification on the digit crops (top-1 accuracy; methods
``cls-kd``, ``cls-dkd``, ``cls-dist``).

Every run trains in-process with mmengine's ``Runner``, on ``--jobs``
worker processes, and is cached in ``<work-dir>/<variant>/<run>/``: a
re-run reuses each finished run whose resolved config, schedule, seed,
dataset and teacher are unchanged, so an interrupted benchmark continues
where it stopped. See docs/efficacy.md for the proxy and the results.

Examples::

    python tools/demo.py                         # the demo: CWD, seed 0
    python tools/demo.py --methods all --seeds 0 1 2 \
        --convergence-seeds 0 1 2                # the full table
    python tools/demo.py --methods all --data-seed 0 --digits 2 5 \
        --iters 12000                            # the docs' 12000-it tables
    python tools/demo.py --methods fgd --splits holdout   # tuning
    python tools/demo.py --methods cwd --splits holdout --tag w5 \
        --cfg-options model.distill.0.loss.loss_weight=5  # another setting
    python tools/demo.py --methods cls-kd cls-dist    # classification
    python tools/demo.py --task classification --methods all
"""
import argparse
import dataclasses
import os
import os.path as osp
import re
import sys
import time
from typing import Callable, List, Optional, Tuple

_START = time.perf_counter()  # the wall time includes the imports

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
try:
    import mmkd_plugin  # noqa: F401
except ImportError:  # not installed: run from a source checkout
    sys.path.insert(0, REPO_ROOT)
from mmengine.config import Config, DictAction

from mmkd_plugin.efficacy.proxy import plan_runs
from mmkd_plugin.efficacy.report import markdown_table, plot_scores
from mmkd_plugin.efficacy.results import groups_of, write_results
from mmkd_plugin.efficacy.runs import check_option_keys
from mmkd_plugin.efficacy.scheduler import run_all
from mmkd_plugin.efficacy.tasks import (TASKS, Task, all_methods,
                                        task_of_methods)

DEFAULT_TASK = 'detection'
# The dataset-variant options: the variant field each sets. A task takes
# those its variant has (tasks.DataVariant, tasks.CropVariant).
VARIANT_FLAGS = {'data_seed': 'seed', 'image_size': 'image_size',
                 'digits': 'digits', 'digit_size': 'digit_size',
                 'dataset_size': 'sizes'}


def per_task(default: Callable[[Task], str]) -> str:
    """A flag's default for each task, as help text: ``'a (detection);
    b (classification)'``."""
    return '; '.join(f'{default(task)} ({name})'
                     for name, task in TASKS.items())


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Distillation efficacy benchmark on the generated '
        'digit scenes (detection) or digit crops (classification): '
        'teacher, converged student baseline and distilled students over '
        'several seeds.')
    parser.add_argument('--task', choices=list(TASKS), default=None,
                        help='default: the task of --methods, '
                        f'{DEFAULT_TASK} without them')
    parser.add_argument('--methods', nargs='+', default=None,
                        choices=[*all_methods(), 'all'],
                        help='methods of one task; all: every method of the '
                        'task. Default: ' + per_task(
                            lambda task: ' '.join(task.demo_methods)))
    parser.add_argument('--seeds', nargs='+', type=int, default=None,
                        help='student training seeds. Default: ' + per_task(
                            lambda task: ' '.join(map(str, task.demo_seeds))))
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations of teachers and students. '
                        'Default: ' + per_task(lambda task: str(
                            task.demo_iters)))
    parser.add_argument('--convergence-seeds', nargs='*', type=int,
                        default=None,
                        help='seeds of the baselines trained 2x as long (the '
                        'convergence check); default the first seed, none '
                        'when given without a value')
    parser.add_argument('--no-controls', action='store_true',
                        help='skip the init-only controls')
    parser.add_argument('--splits', nargs='+', default=['val'],
                        choices=['val', 'holdout'],
                        help='splits to evaluate; the first is reported. '
                        'Choose settings on holdout only (default val)')
    variant = parser.add_argument_group(
        'dataset variant', 'each option replaces one field of the task\'s '
        'demo variant; --digits and --digit-size apply to detection only')
    scenes = TASKS['detection'].demo_variant
    variant.add_argument('--data-seed', type=int, default=None,
                         help='generator seed. Default: ' + per_task(
                             lambda task: str(task.demo_variant.seed)))
    variant.add_argument('--image-size', type=int, default=None,
                         help='image side in px. Default: ' + per_task(
                             lambda task: str(task.demo_variant.image_size)))
    variant.add_argument('--digits', nargs=2, type=int, default=None,
                         metavar=('MIN', 'MAX'),
                         help='digits per image (default '
                         f'{scenes.digits[0]} {scenes.digits[1]})')
    variant.add_argument('--digit-size', nargs=2, type=int, default=None,
                         metavar=('MIN', 'MAX'),
                         help='glyph height range in px (default: 12-48 '
                         'at 128 px, scaled to the image size)')
    variant.add_argument('--dataset-size', nargs=3, type=int, default=None,
                         metavar=('TRAIN', 'VAL', 'HOLDOUT'),
                         help='images per split. Default: ' + per_task(
                             lambda task: ' '.join(
                             map(str, task.demo_variant.sizes))))
    parser.add_argument('--data-root', default='data/demo',
                        help='datasets are generated in a folder per '
                        'variant under it (default data/demo)')
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='runs and reports go to a folder per variant '
                        'under it')
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs trained at the same time (default 2)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads per run (default 1)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='training batch size (default: the configs\')')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, metavar='KEY=VALUE',
                        help='config options for the distilled students '
                        'only (keys of the methods\' configs, e.g. '
                        'model.distill.0.loss.loss_weight=5); the teacher '
                        'and the baselines are shared. Needs --tag')
    parser.add_argument('--tag', default='',
                        help='with --cfg-options: their rows and runs are '
                        'named <method>_<tag> (letters, digits, . + -), '
                        'cached beside the method\'s own')
    args = parser.parse_args(argv)
    try:
        args.task, args.methods = choose_task(args.task, args.methods)
    except ValueError as error:
        parser.error(str(error))
    if args.seeds is None:
        args.seeds = list(args.task.demo_seeds)
    if args.iters is None:
        args.iters = args.task.demo_iters
    args.seeds = list(dict.fromkeys(args.seeds))
    if args.iters < 1 or args.jobs < 1 or args.threads < 1:
        parser.error('--iters, --jobs and --threads must be >= 1')
    args.variant = make_variant(parser, args)
    sizes = args.variant.sizes
    if min(sizes[:2]) < 1 or sizes[2] < 0:
        parser.error('--dataset-size needs at least 1 train and 1 val image')
    if 'holdout' in args.splits and sizes[2] < 1:
        parser.error('--splits holdout needs holdout images')
    check_cfg_options(parser, args)
    return args


def check_cfg_options(parser: argparse.ArgumentParser,
                      args: argparse.Namespace) -> None:
    """``--cfg-options`` come with a ``--tag`` that can name a folder, and
    each of their keys has its parent in every chosen method's config;
    otherwise a command-line error."""
    if bool(args.cfg_options) != bool(args.tag):
        parser.error('--cfg-options and --tag go together: the tag names '
                     'the runs the options change')
    if not args.tag:
        return
    if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9.+-]*', args.tag):
        parser.error(f'--tag {args.tag!r}: use letters, digits, . + and -')
    for method in args.methods:
        path = osp.join(REPO_ROOT, 'configs', args.task.config_dir,
                        args.task.methods[method]['config'])
        try:
            check_option_keys(Config.fromfile(path).to_dict(),
                              args.cfg_options, osp.basename(path))
        except KeyError as error:
            parser.error(f'--cfg-options: {error.args[0]}')


def choose_task(task_name: Optional[str],
                methods: Optional[List[str]]) -> Tuple[Task, List[str]]:
    """The task and the methods to run.

    Args:
        task_name (str, optional): ``--task``.
        methods (list[str], optional): ``--methods``; ``'all'`` stands for
            every method of the task.

    Returns:
        tuple[Task, list[str]]: The task and its methods, each once.

    Raises:
        ValueError: If the methods belong to more than one task, or to
            another task than ``task_name``.
    """
    named = list(dict.fromkeys(m for m in methods or [] if m != 'all'))
    if named:
        task = task_of_methods(named)
        if task_name is not None and task.name != task_name:
            raise ValueError(f'--task {task_name}: the methods '
                             f'{" ".join(named)} are {task.name} methods')
    else:
        task = TASKS[task_name or DEFAULT_TASK]
    if methods is None:
        return task, list(task.demo_methods)
    if 'all' in methods:
        return task, list(task.methods)
    return task, named


def make_variant(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The task's demo variant with the variant options given in place of
    its fields; an option its variant does not have is a command-line
    error."""
    fields = args.task.variant_fields()
    options = {}
    for flag, name in VARIANT_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if name not in fields:
            parser.error(f'--{flag.replace("_", "-")} does not apply to the '
                         f'{args.task.name} task')
        options[name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(args.task.demo_variant, **options)


class Clock:
    """Prints lines with the time since the start."""

    def log(self, message: str) -> None:
        seconds = int(time.perf_counter() - _START)
        print(f'[demo {seconds // 3600:d}:{seconds // 60 % 60:02d}:'
              f'{seconds % 60:02d}] {message}', flush=True)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    clock = Clock()
    task, variant = args.task, args.variant
    work_dir = osp.abspath(osp.join(args.work_dir, variant.folder_name()))
    os.makedirs(work_dir, exist_ok=True)
    clock.log(f'dataset variant {variant.folder_name()}: generating or '
              f'reusing it under {args.data_root}')
    data_root, dataset_meta = variant.generate(args.data_root)
    options = {} if args.batch_size is None else \
        {'train_dataloader.batch_size': args.batch_size}
    specs = plan_runs(args.methods, args.seeds, args.iters,
                      osp.join(REPO_ROOT, 'configs'),
                      convergence_seeds=args.convergence_seeds,
                      controls=not args.no_controls, options=options,
                      distilled_options=args.cfg_options, tag=args.tag)
    clock.log(f'{len(specs)} runs ({", ".join(args.methods)}; seeds '
              f'{" ".join(map(str, args.seeds))}; {args.iters} iterations) '
              f'on {args.jobs} worker(s) x {args.threads} thread(s), '
              f'{os.cpu_count()} CPU cores; work dir {work_dir}')
    results = run_all(specs, work_dir, data_root, dataset_meta, args.splits,
                      jobs=args.jobs, threads=args.threads, log=clock.log)
    split = args.splits[0]
    groups = groups_of(specs, results, split)
    wall = time.perf_counter() - _START
    title = (f'{task.data_name} {variant.folder_name()}, {args.iters} '
             f'iters, seeds {" ".join(map(str, args.seeds))}')
    header = (f'{title}. {task.metric_label} (%) on the {split} split, '
              'mean ± sample std over the seeds; gap recovered = '
              '(distilled - baseline) / (teacher - baseline); paired = '
              'per-seed differences, ✓ where their mean exceeds twice '
              f'their std. Wall time {wall / 60:.0f} min on '
              f'{os.cpu_count()} CPU cores ({args.jobs} jobs x '
              f'{args.threads} threads).')
    table = markdown_table(groups, split, task.score_name)
    write_results(work_dir, args, variant, dataset_meta, specs, results,
                  table, header, wall)
    plot_scores(groups, osp.join(work_dir, task.chart_file), title, split,
                task.axis_label)
    print('\n' + header + '\n\n' + table)
    reused = [name for name, result in results.items() if result['cached']]
    if reused:
        clock.log(f'reused finished runs: {", ".join(reused)}')
    clock.log(f'wrote table.md, results.json and {task.chart_file} to '
              f'{work_dir}')
    clock.log(f'total wall time {wall / 60:.1f} min')


if __name__ == '__main__':
    main()
