# Copyright (c) mmkd_plugin contributors.
"""The distillation demo (`make demo`): FGD and friends at small scale.

Mirrors ``tools/dist_train.sh configs/fgd_retina_r101_r18.py 8`` on the
generated digit scenes, on one machine (CPU is enough):

1. generate ``data/digit_scenes`` (2000 train / 300 val / 300 holdout,
   128 px) unless it is already there;
2. train the teacher, RetinaNet R50 (``configs/retina_r50_digits.py``);
3. train the student baseline, RetinaNet R18
   (``configs/retina_r18_digits.py``);
4. train the distilled R18 of each method (``--methods``; FGD by default:
   ``configs/fgd_retina_r101_r18_digits.py``) with the teacher of step 2;
5. evaluate every run on the val split with mmdet's CocoMetric;
6. print a table and write ``table.md``, ``results.json`` and ``map.png``
   into the work dir (default ``work_dirs/demo``).

Every run uses the same schedule and seed and goes through the project's
own ``tools/train.py`` and ``tools/test.py`` (one subprocess each, so the
mmengine log lines stream to the console). Each run lives in
``<work-dir>/<name>/``; a re-run skips a run whose final checkpoint and
metrics exist for the same resolved config, schedule, seed, dataset (and
teacher), and retrains it otherwise.

Examples::

    python tools/demo.py                        # FGD, 1000 iterations
    python tools/demo.py --methods all          # FGD, CWD, MGD, PKD
    python tools/demo.py --smoke --work-dir /tmp/demo_smoke
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional

_START = time.perf_counter()  # the total wall time includes the imports

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
try:
    from mmkd_plugin.datasets.digit_scenes import generate_digit_scenes
except ImportError:  # not installed: run from a source checkout
    sys.path.insert(0, REPO_ROOT)
    from mmkd_plugin.datasets.digit_scenes import generate_digit_scenes

CONFIG_DIR = osp.join(REPO_ROOT, 'configs')
TEACHER = dict(name='teacher', config='retina_r50_digits.py',
               model='RetinaNet R50 (teacher)')
BASELINE = dict(name='baseline', config='retina_r18_digits.py',
                model='RetinaNet R18 (student baseline)')
# Distilled R18 students, all from the R50 teacher of TEACHER.
METHODS = {
    'fgd': dict(config='fgd_retina_r101_r18_digits.py',
                model='R18 + FGD (R50 teacher)'),
    'cwd': dict(config='cwd_retina_r101_r18_digits.py',
                model='R18 + CWD (R50 teacher)'),
    'mgd': dict(config='mgd_retina_x101_r50_digits.py',
                model='R18 + MGD (R50 teacher)'),
    'pkd': dict(config='pkd_retina_x101_r50_digits.py',
                model='R18 + PKD (R50 teacher)'),
}
FULL_DATASET = (2000, 300, 300)
SMOKE_DATASET = (16, 16, 0)
SMOKE_ITERS = 4
CONFIG_BATCH = 8  # train batch size of _base_/digit_scenes.py
SMOKE_BATCH = 2
IMAGE_SIZE = 128
DATASET_SEED = 0
METRIC_KEYS = {'mAP': 'coco/bbox_mAP', 'AP50': 'coco/bbox_mAP_50',
               'AP75': 'coco/bbox_mAP_75'}
TRAIN_MARKER = 'demo_train.json'
METRICS_FILE = 'metrics.json'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Distillation demo on the generated digit scenes: '
        'teacher (RetinaNet R50), student baseline (RetinaNet R18) and the '
        'distilled R18 of each method, same schedule and seed, COCO mAP on '
        'the val split.')
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='runs, table.md, results.json and map.png go '
                        'here; finished runs found here are reused (default '
                        'work_dirs/demo)')
    parser.add_argument('--iters', type=int, default=None,
                        help=f'training iterations of every run (default '
                        f'1000; {SMOKE_ITERS} with --smoke)')
    parser.add_argument('--seed', type=int, default=0,
                        help='training seed, the same for every run '
                        '(default 0)')
    parser.add_argument(
        '--methods', nargs='+', default=['fgd'],
        choices=[*METHODS, 'all'],
        help='distillation methods to run, for the RetinaNet R50 -> R18 '
        'pair: fgd, cwd, mgd, pkd, or all (= those four). LD and DKD '
        '(head distillation) will come later. Default: fgd')
    parser.add_argument('--data-root', default=None,
                        help='digit-scenes dataset root, generated there if '
                        'missing or different (default data/digit_scenes; '
                        'with --smoke <work-dir>/digit_scenes_smoke)')
    parser.add_argument(
        '--dataset-size', nargs=3, type=int, default=None,
        metavar=('TRAIN', 'VAL', 'HOLDOUT'),
        help='images per split (default %d %d %d; with --smoke %d %d %d)' %
        (*FULL_DATASET, *SMOKE_DATASET))
    parser.add_argument('--batch-size', type=int, default=None,
                        help=f'training batch size (default '
                        f'{CONFIG_BATCH}, the configs\'; {SMOKE_BATCH} with '
                        '--smoke)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads of each run (sets '
                        'OMP_NUM_THREADS; default: OMP_NUM_THREADS if set, '
                        'else torch\'s own choice)')
    parser.add_argument('--smoke', action='store_true',
                        help=f'tiny run for tests: {SMOKE_ITERS} iterations, '
                        f'batch {SMOKE_BATCH}, a '
                        f'{SMOKE_DATASET[0]}/{SMOKE_DATASET[1]} image '
                        'dataset, no data-loader workers')
    args = parser.parse_args(argv)
    if 'all' in args.methods:
        args.methods = list(METHODS)
    args.methods = list(dict.fromkeys(args.methods))
    if args.iters is None:
        args.iters = SMOKE_ITERS if args.smoke else 1000
    if args.iters < 1:
        parser.error('--iters must be >= 1')
    if args.data_root is None:
        args.data_root = osp.join(args.work_dir, 'digit_scenes_smoke') \
            if args.smoke else 'data/digit_scenes'
    if args.batch_size is None and args.smoke:
        args.batch_size = SMOKE_BATCH
    if args.dataset_size is None:
        args.dataset_size = SMOKE_DATASET if args.smoke else FULL_DATASET
    return args


class Clock:
    """Prints stage lines with the time since the demo started."""

    def __init__(self, start: float) -> None:
        self.start = start

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def log(self, message: str) -> None:
        seconds = int(self.elapsed())
        stamp = f'{seconds // 3600:d}:{seconds // 60 % 60:02d}:' \
            f'{seconds % 60:02d}'
        print(f'[demo +{stamp}] {message}', flush=True)


def read_json(path: str) -> Optional[dict]:
    """Return the json in ``path``, or None when missing or unreadable."""
    try:
        with open(path, encoding='utf-8') as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def write_json(path: str, data: dict) -> None:
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(data, file, indent=2, sort_keys=True)
        file.write('\n')


def train_options(args: argparse.Namespace, data_root: str) -> List[str]:
    """``--cfg-options`` of every training run (same for all of them).

    The schedule of the configs (100 warm-up iterations, cosine to 1000)
    is rescaled to ``--iters``; validation during training is off, the
    evaluation is a separate ``tools/test.py`` run.
    """
    iters = args.iters
    warmup = max(1, iters // 10)
    options = [
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'param_scheduler.0.end={warmup}',
        f'param_scheduler.1.begin={warmup}',
        f'param_scheduler.1.end={iters}',
        f'param_scheduler.1.T_max={max(1, iters - warmup)}',
        f'default_hooks.checkpoint.interval={iters}',
        f'default_hooks.logger.interval={1 if args.smoke else min(20, iters)}',
        f'randomness.seed={args.seed}',
        f'train_dataloader.dataset.data_root={data_root}/',
        'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None',
    ]
    if args.batch_size is not None:
        options.append(f'train_dataloader.batch_size={args.batch_size}')
    if args.smoke:
        options += ['train_dataloader.num_workers=0',
                    'train_dataloader.persistent_workers=False']
    return options


def test_options(args: argparse.Namespace, data_root: str) -> List[str]:
    """``--cfg-options`` of every evaluation: the val split, CocoMetric."""
    options = [
        f'test_dataloader.dataset.data_root={data_root}/',
        f'test_evaluator.ann_file={data_root}/annotations/val.json',
    ]
    if args.smoke:
        options += ['test_dataloader.num_workers=0',
                    'test_dataloader.persistent_workers=False']
    return options


def config_digest(config: str, options: List[str]) -> str:
    """sha256 of the resolved config with ``options`` applied.

    Any change in the config files (including their bases), the schedule,
    the seed or the data paths changes the digest and so retrains the run.
    """
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(config)
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(
        parser.parse_args(['--cfg-options', *options]).cfg_options)
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def child_env(threads: Optional[int]) -> Dict[str, str]:
    """Environment of the training and test processes.

    OpenMP threads sleep instead of spinning while they wait
    (``OMP_WAIT_POLICY=PASSIVE``, unless set): with other processes on the
    same cores, spinning threads made a training step 3-8x slower here; on
    an idle machine it costs next to nothing.
    """
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    if threads is not None:
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    return env


def run_tool(clock: Clock, name: str, argv: List[str],
             env: Dict[str, str]) -> float:
    """Run a repo tool with the console as its output; return its wall s."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env=env)
    if proc.returncode != 0:
        clock.log(f'{name}: {osp.basename(argv[0])} failed (exit code '
                  f'{proc.returncode}), see its output above')
        raise SystemExit(proc.returncode)
    return time.perf_counter() - start


def seconds_per_iter(run_dir: str) -> Optional[float]:
    """Mean logged ``time`` per iteration of the newest training log."""
    logs = sorted(glob.glob(osp.join(run_dir, '*', 'vis_data',
                                     'scalars.json')))
    if not logs:
        return None
    times = []
    with open(logs[-1], encoding='utf-8') as file:
        for line in file:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if 'time' in entry:
                times.append(float(entry['time']))
    return sum(times) / len(times) if times else None


def read_test_metrics(clock: Clock, name: str,
                      eval_dir: str) -> Dict[str, float]:
    """COCO metrics (percent) of the newest ``tools/test.py`` run.

    CocoMetric returns no numbers when the model detected nothing above
    its score threshold (an untrained model); that counts as 0 AP.
    """
    found = sorted(glob.glob(osp.join(eval_dir, '*', '*.json')))
    metrics = read_json(found[-1]) if found else None
    if metrics is None:
        raise SystemExit(f'{name}: no test results found under {eval_dir}')
    if METRIC_KEYS['mAP'] not in metrics:
        clock.log(f'{name}: no detections on the val split, AP counted as 0')
        return {key: 0.0 for key in METRIC_KEYS}
    return {key: 100.0 * float(metrics[coco_key])
            for key, coco_key in METRIC_KEYS.items()}


def train_and_evaluate(clock: Clock, args: argparse.Namespace, stage: str,
                       name: str, config: str, train_opts: List[str],
                       test_opts: List[str],
                       extra_signature: Optional[dict] = None) -> dict:
    """Train one run and evaluate it, or reuse a finished one.

    Returns:
        dict: ``signature``, ``checkpoint``, ``mAP``, ``AP50``, ``AP75``
        (percent), ``train_time_s``, ``s_per_iter``, ``cached``.
    """
    run_dir = osp.join(args.work_dir, name)
    config_path = osp.join(CONFIG_DIR, config)
    signature = dict(config=f'configs/{config}',
                     digest=config_digest(config_path, train_opts),
                     iters=args.iters, seed=args.seed,
                     **(extra_signature or {}))
    ckpt = osp.join(run_dir, f'iter_{args.iters}.pth')
    marker = read_json(osp.join(run_dir, TRAIN_MARKER))
    metrics = read_json(osp.join(run_dir, METRICS_FILE))
    if (marker and marker.get('signature') == signature
            and osp.isfile(ckpt) and metrics
            and metrics.get('signature') == signature):
        clock.log(f'{stage} {name}: finished run found in {run_dir} '
                  f'(iter_{args.iters}.pth, {METRICS_FILE}), skipped: '
                  f'mAP {metrics["mAP"]:.1f}')
        return dict(metrics, checkpoint=ckpt, cached=True)

    if marker and marker.get('signature') == signature and \
            osp.isfile(ckpt):
        clock.log(f'{stage} {name}: trained checkpoint found, training '
                  f'skipped: {ckpt}')
        train_time, s_iter = marker['train_time_s'], marker['s_per_iter']
    else:
        for stale in (TRAIN_MARKER, METRICS_FILE):
            if osp.exists(osp.join(run_dir, stale)):
                os.remove(osp.join(run_dir, stale))
        clock.log(f'{stage} {name}: training configs/{config}, '
                  f'{args.iters} iterations, seed {args.seed} -> {run_dir}')
        train_time = run_tool(clock, name, [
            osp.join(REPO_ROOT, 'tools', 'train.py'), config_path,
            '--work-dir', run_dir, '--cfg-options', *train_opts
        ], child_env(args.threads))
        if not osp.isfile(ckpt):
            raise SystemExit(f'{name}: training ended without {ckpt}')
        s_iter = seconds_per_iter(run_dir)
        write_json(osp.join(run_dir, TRAIN_MARKER),
                   dict(signature=signature, train_time_s=train_time,
                        s_per_iter=s_iter))
        per_iter = f', {s_iter:.2f} s/iter' if s_iter else ''
        clock.log(f'{stage} {name}: trained in {train_time:.0f} s'
                  f'{per_iter}')

    clock.log(f'{stage} {name}: evaluating {ckpt} on the val split '
              '(CocoMetric)')
    eval_dir = osp.join(run_dir, 'eval')
    options = list(test_opts)
    if args.smoke:  # an untrained model scores below the 0.05 threshold
        options.append('model.student.test_cfg.score_thr=0.0' if config in
                       [m['config'] for m in METHODS.values()] else
                       'model.test_cfg.score_thr=0.0')
    eval_time = run_tool(clock, name, [
        osp.join(REPO_ROOT, 'tools', 'test.py'), config_path, ckpt,
        '--work-dir', eval_dir, '--cfg-options', *options
    ], child_env(args.threads))
    result = dict(read_test_metrics(clock, name, eval_dir),
                  signature=signature,
                  train_time_s=train_time, s_per_iter=s_iter,
                  eval_time_s=eval_time)
    write_json(osp.join(run_dir, METRICS_FILE), result)
    clock.log(f'{stage} {name}: mAP {result["mAP"]:.1f}, AP50 '
              f'{result["AP50"]:.1f}, AP75 {result["AP75"]:.1f} (eval '
              f'{eval_time:.0f} s)')
    return dict(result, checkpoint=ckpt, cached=False)


def summarise(runs: Dict[str, dict]) -> None:
    """Add ``gain`` and ``gap_recovered`` to the distilled runs in place."""
    teacher, baseline = runs['teacher']['mAP'], runs['baseline']['mAP']
    gap = teacher - baseline
    for name, run in runs.items():
        if name in ('teacher', 'baseline'):
            run['gain'] = run['gap_recovered'] = None
            continue
        run['gain'] = run['mAP'] - baseline
        # Undefined when the teacher is not better than the baseline.
        run['gap_recovered'] = run['gain'] / gap if gap > 0 else None


def markdown_table(runs: Dict[str, dict]) -> str:
    """The results as a markdown table."""
    lines = [
        '| method | model | mAP | AP50 | AP75 | gain over baseline | '
        'teacher-student gap recovered | train time |',
        '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ]
    for name, run in runs.items():
        gain = '—' if run['gain'] is None else f'{run["gain"]:+.1f}'
        if name in ('teacher', 'baseline'):
            recovered = '—'
        elif run['gap_recovered'] is None:
            recovered = 'n/a (teacher not above baseline)'
        else:
            recovered = f'{100 * run["gap_recovered"]:.0f}%'
        train = f'{run["train_time_s"]:.0f} s'
        if run.get('s_per_iter'):
            train += f' ({run["s_per_iter"]:.2f} s/iter)'
        lines.append(
            f'| {name} | {run["model"]} | {run["mAP"]:.1f} | '
            f'{run["AP50"]:.1f} | {run["AP75"]:.1f} | {gain} | {recovered} '
            f'| {train} |')
    return '\n'.join(lines) + '\n'


def plot_map(runs: Dict[str, dict], path: str, title: str) -> None:
    """Bar chart of mAP per run, teacher and baseline marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(runs)
    values = [runs[name]['mAP'] for name in names]
    colours = ['#4c4c4c' if name == 'teacher' else
               '#a6a6a6' if name == 'baseline' else '#1f77b4'
               for name in names]
    fig, axis = plt.subplots(figsize=(1.5 * len(names) + 3.5, 4.2))
    bars = axis.bar(names, values, color=colours)
    axis.axhline(runs['teacher']['mAP'], color='#4c4c4c', linestyle='--',
                 linewidth=1, label=f'teacher {runs["teacher"]["mAP"]:.1f}')
    axis.axhline(runs['baseline']['mAP'], color='#a6a6a6', linestyle=':',
                 linewidth=1.5,
                 label=f'baseline {runs["baseline"]["mAP"]:.1f}')
    for bar, value in zip(bars, values):
        axis.annotate(f'{value:.1f}', (bar.get_x() + bar.get_width() / 2,
                                       value), ha='center', va='bottom',
                      xytext=(0, 2), textcoords='offset points')
    axis.set_ylabel('bbox mAP on val (COCO, %)')
    axis.set_ylim(0, max(values + [1.0]) * 1.12)
    axis.set_title(title, fontsize=10)
    axis.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    clock = Clock(_START)
    os.makedirs(args.work_dir, exist_ok=True)
    num_stages = 3 + len(args.methods)
    threads = args.threads or os.environ.get('OMP_NUM_THREADS') or \
        'torch default'
    clock.log(f'work dir {args.work_dir}; methods {", ".join(args.methods)};'
              f' {args.iters} iterations, seed {args.seed}; {os.cpu_count()} '
              f'CPU cores, load average {os.getloadavg()[0]:.1f}; threads '
              f'per run: {threads}, OMP_WAIT_POLICY '
              f'{child_env(args.threads)["OMP_WAIT_POLICY"]}')

    num_train, num_val, num_holdout = args.dataset_size
    clock.log(f'(1/{num_stages}) dataset: digit scenes in {args.data_root} '
              f'({num_train} train / {num_val} val / {num_holdout} holdout, '
              f'{IMAGE_SIZE} px)')
    start = time.perf_counter()
    paths = generate_digit_scenes(args.data_root, num_train=num_train,
                                  num_val=num_val, num_holdout=num_holdout,
                                  image_size=IMAGE_SIZE, seed=DATASET_SEED)
    dataset_meta = read_json(paths['meta'])
    clock.log(f'(1/{num_stages}) dataset ready '
              f'({time.perf_counter() - start:.0f} s)')

    data_root = osp.abspath(args.data_root)
    train_opts = train_options(args, data_root)
    test_opts = test_options(args, data_root)
    data_signature = dict(dataset=dataset_meta)

    runs: Dict[str, dict] = {}
    teacher = train_and_evaluate(
        clock, args, f'(2/{num_stages})', TEACHER['name'], TEACHER['config'],
        train_opts, test_opts, data_signature)
    runs['teacher'] = dict(teacher, config=TEACHER['config'],
                           model=TEACHER['model'])
    baseline = train_and_evaluate(
        clock, args, f'(3/{num_stages})', BASELINE['name'],
        BASELINE['config'], train_opts, test_opts, data_signature)
    runs['baseline'] = dict(baseline, config=BASELINE['config'],
                            model=BASELINE['model'])
    teacher_ckpt = osp.abspath(teacher['checkpoint'])
    for index, method in enumerate(args.methods):
        spec = METHODS[method]
        result = train_and_evaluate(
            clock, args, f'({4 + index}/{num_stages})', method,
            spec['config'],
            train_opts + [f'model.teacher_ckpt={teacher_ckpt}'], test_opts,
            dict(data_signature, teacher=teacher['signature']['digest']))
        runs[method] = dict(result, config=spec['config'],
                            model=spec['model'])

    summarise(runs)
    table = markdown_table(runs)
    settings = dict(iters=args.iters, seed=args.seed,
                    batch_size=args.batch_size or CONFIG_BATCH,
                    smoke=args.smoke,
                    data_root=args.data_root, dataset=dataset_meta,
                    methods=args.methods)
    header = (f'Digit scenes ({num_train} train / {num_val} val images, '
              f'{IMAGE_SIZE} px), {args.iters} iterations, batch '
              f'{settings["batch_size"]}, seed {args.seed}; COCO bbox AP (%) '
              'on the val split. Gap recovered = (distilled - baseline) / '
              '(teacher - baseline). One seed, one run each.'
              + (' SMOKE RUN: the numbers mean nothing.' if args.smoke
                 else ''))
    with open(osp.join(args.work_dir, 'table.md'), 'w',
              encoding='utf-8') as file:
        file.write(header + '\n\n' + table)
    plot_map(runs, osp.join(args.work_dir, 'map.png'),
             f'digit scenes, {args.iters} iters, seed {args.seed}'
             + (' (smoke)' if args.smoke else ''))
    total = clock.elapsed()
    results = dict(
        settings=settings, units='percent (COCO bbox AP x 100)',
        runs={name: {key: value for key, value in run.items()
                     if key != 'signature'}
              for name, run in runs.items()},
        total_wall_s=total)
    write_json(osp.join(args.work_dir, 'results.json'), results)

    print('\n' + header + '\n\n' + table)
    clock.log(f'wrote {osp.join(args.work_dir, "table.md")}, results.json '
              'and map.png')
    cached = [name for name, run in runs.items() if run['cached']]
    if cached:
        clock.log(f'reused finished runs: {", ".join(cached)}')
    clock.log(f'total wall time {total:.0f} s ({total / 60:.1f} min)')


if __name__ == '__main__':
    main()
