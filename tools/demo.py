# Copyright (c) mmkd_plugin contributors.
"""The efficacy benchmark on the generated digit scenes (`make demo`).

Trains, per detector family, a teacher and a narrower student baseline on
the same data and schedule, then each chosen method's distilled student,
for every seed, and reports the mAP table (mean ± std over the seeds, gain,
share of the teacher-student gap recovered, paired per-seed differences
with the baseline and with the init-only control) and a chart.

Every run trains in-process with mmengine's ``Runner``, on ``--jobs``
worker processes, and is cached in ``<work-dir>/<variant>/<run>/``: a
re-run reuses each finished run whose resolved config, schedule, seed,
dataset and teacher are unchanged, so an interrupted benchmark continues
where it stopped. See docs/efficacy.md for the proxy and the results.

Examples::

    python tools/demo.py                         # the demo: CWD, 2 seeds
    python tools/demo.py --methods all --seeds 0 1 2 \
        --convergence-seeds 0 1 2                # the full table
    python tools/demo.py --methods all --data-seed 1 --digits 3 6
    python tools/demo.py --methods fgd --splits holdout   # tuning
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import List, Optional

_START = time.perf_counter()  # the wall time includes the imports

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
try:
    import mmkd_plugin  # noqa: F401
except ImportError:  # not installed: run from a source checkout
    sys.path.insert(0, REPO_ROOT)
from mmkd_plugin.efficacy.proxy import METHODS, DataVariant, plan_runs
from mmkd_plugin.efficacy.report import markdown_table, plot_map
from mmkd_plugin.efficacy.results import groups_of, write_results
from mmkd_plugin.efficacy.scheduler import run_all

DEMO_METHODS = ['cwd']
DEMO_SEEDS = [0, 1]
DEFAULT_ITERS = 1500


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Distillation efficacy benchmark on the generated '
        'digit scenes: teacher, converged student baseline and distilled '
        'students over several seeds.')
    parser.add_argument('--methods', nargs='+', default=DEMO_METHODS,
                        choices=[*METHODS, 'all'],
                        help=f'default: {" ".join(DEMO_METHODS)}')
    parser.add_argument('--seeds', nargs='+', type=int, default=DEMO_SEEDS,
                        help='student training seeds (default 0 1 2)')
    parser.add_argument('--iters', type=int, default=DEFAULT_ITERS,
                        help='training iterations of teachers and students '
                        f'(default {DEFAULT_ITERS})')
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
    variant = parser.add_argument_group('dataset variant')
    variant.add_argument('--data-seed', type=int, default=0)
    variant.add_argument('--image-size', type=int, default=64)
    variant.add_argument('--digits', nargs=2, type=int, default=[2, 5],
                         metavar=('MIN', 'MAX'), help='digits per image')
    variant.add_argument('--digit-size', nargs=2, type=int, default=None,
                         metavar=('MIN', 'MAX'),
                         help='glyph height range in px (default: 12-48 '
                         'at 128 px, scaled to the image size)')
    variant.add_argument('--dataset-size', nargs=3, type=int,
                         default=[2000, 1000, 1000],
                         metavar=('TRAIN', 'VAL', 'HOLDOUT'))
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
    args = parser.parse_args(argv)
    if 'all' in args.methods:
        args.methods = list(METHODS)
    args.methods = list(dict.fromkeys(args.methods))
    args.seeds = list(dict.fromkeys(args.seeds))
    if args.iters < 1 or args.jobs < 1 or args.threads < 1:
        parser.error('--iters, --jobs and --threads must be >= 1')
    if min(args.dataset_size[:2]) < 1 or args.dataset_size[2] < 0:
        parser.error('--dataset-size needs at least 1 train and 1 val image')
    if 'holdout' in args.splits and args.dataset_size[2] < 1:
        parser.error('--splits holdout needs holdout images')
    return args


class Clock:
    """Prints lines with the time since the start."""

    def log(self, message: str) -> None:
        seconds = int(time.perf_counter() - _START)
        print(f'[demo {seconds // 3600:d}:{seconds // 60 % 60:02d}:'
              f'{seconds % 60:02d}] {message}', flush=True)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    clock = Clock()
    variant = DataVariant(seed=args.data_seed, image_size=args.image_size,
                          digits=tuple(args.digits),
                          digit_size=tuple(args.digit_size)
                          if args.digit_size else None,
                          sizes=tuple(args.dataset_size))
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
                      controls=not args.no_controls, options=options)
    clock.log(f'{len(specs)} runs ({", ".join(args.methods)}; seeds '
              f'{" ".join(map(str, args.seeds))}; {args.iters} iterations) '
              f'on {args.jobs} worker(s) x {args.threads} thread(s), '
              f'{os.cpu_count()} CPU cores; work dir {work_dir}')
    results = run_all(specs, work_dir, data_root, dataset_meta, args.splits,
                      jobs=args.jobs, threads=args.threads, log=clock.log)
    split = args.splits[0]
    groups = groups_of(specs, results, split)
    wall = time.perf_counter() - _START
    title = (f'digit scenes {variant.folder_name()}, {args.iters} iters, '
             f'seeds {" ".join(map(str, args.seeds))}')
    header = (f'{title}. COCO bbox mAP (%) on the {split} split, mean ± '
              'sample std over the seeds; gap recovered = (distilled - '
              'baseline) / (teacher - baseline); paired = per-seed '
              'differences, ✓ where their mean exceeds twice their std. '
              f'Wall time {wall / 60:.0f} min on {os.cpu_count()} CPU cores '
              f'({args.jobs} jobs x {args.threads} threads).')
    table = markdown_table(groups, split)
    write_results(work_dir, args, variant, dataset_meta, specs, results,
                  table, header, wall)
    plot_map(groups, osp.join(work_dir, 'map.png'), title, split)
    print('\n' + header + '\n\n' + table)
    reused = [name for name, result in results.items() if result['cached']]
    if reused:
        clock.log(f'reused finished runs: {", ".join(reused)}')
    clock.log(f'wrote table.md, results.json and map.png to {work_dir}')
    clock.log(f'total wall time {wall / 60:.1f} min')


if __name__ == '__main__':
    main()
