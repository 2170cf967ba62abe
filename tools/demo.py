# Copyright (c) mmkd_plugin contributors.
"""The distillation demo (`make demo`): FGD and friends at small scale.

Mirrors ``tools/dist_train.sh configs/fgd_retina_r101_r18.py 8`` on the
generated digit scenes, on one machine (CPU is enough):

1. generate ``data/digit_scenes`` (2000 train / 1000 val / 1000 holdout,
   128 px) unless it is already there;
2. for each detector family the chosen methods need, train its teacher
   (R50, ``--teacher-iters``, default 1000) once and its student baseline
   (R18, ``--iters``, default 500) for each seed: RetinaNet
   (``configs/retina_r{50,18}_digits.py``) for FGD, CWD, MGD and PKD, GFL
   for LD, Faster R-CNN for DKD;
3. train the distilled R18 of each method (``--methods``; FGD by default:
   ``configs/fgd_retina_r101_r18_digits.py``) for each seed, with the same
   schedule as its baseline and the family's teacher;
4. evaluate every run with mmdet's CocoMetric on the val split (the
   reported numbers) and, with ``--eval-holdout``, on the holdout split
   (the split the loss weights of the ``*_digits.py`` configs were chosen
   on);
5. print a table (mean and spread over the seeds) and write ``table.md``,
   ``results.json`` and ``map.png`` into the work dir (``work_dirs/demo``).

Every run goes through the project's own ``tools/train.py`` and
``tools/test.py`` (one subprocess each, so the mmengine log lines stream to
the console). Each run lives in ``<work-dir>/<name>/`` (``<name>_seed<k>``
for seeds other than 0); a re-run does not retrain a run whose final
checkpoint exists for the same resolved config, schedule, seed, dataset
(and teacher), evaluates it only on splits it has no metrics for yet, and
retrains it when any of those changed.

Examples::

    python tools/demo.py                        # FGD, seed 0
    python tools/demo.py --methods fgd --seeds 0 1 2
    python tools/demo.py --methods all          # FGD CWD MGD PKD LD DKD
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
from typing import Dict, List, Optional, Tuple

_START = time.perf_counter()  # the total wall time includes the imports

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
try:
    from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
except ImportError:  # not installed: run from a source checkout
    sys.path.insert(0, REPO_ROOT)
    from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
from mmkd_plugin.utils.demo_report import (has_holdout, markdown_table,
                                           plot_map, summarise)

CONFIG_DIR = osp.join(REPO_ROOT, 'configs')
# Each detector family: the teacher and the student baseline that its
# distilled students are compared with (run names are the work-dir folders).
FAMILIES = {
    'retina': dict(
        teacher=dict(name='teacher', config='retina_r50_digits.py',
                     model='RetinaNet R50 (teacher)'),
        baseline=dict(name='baseline', config='retina_r18_digits.py',
                      model='RetinaNet R18 (student baseline)')),
    'gfl': dict(
        teacher=dict(name='gfl_teacher', config='gfl_r50_digits.py',
                     model='GFL R50 (teacher)'),
        baseline=dict(name='gfl_baseline', config='gfl_r18_digits.py',
                      model='GFL R18 (student baseline)')),
    'faster-rcnn': dict(
        teacher=dict(name='faster-rcnn_teacher',
                     config='faster-rcnn_r50_digits.py',
                     model='Faster R-CNN R50 (teacher)'),
        baseline=dict(name='faster-rcnn_baseline',
                      config='faster-rcnn_r18_digits.py',
                      model='Faster R-CNN R18 (student baseline)')),
}
# Distilled R18 students, each from the R50 teacher of its family.
METHODS = {
    'fgd': dict(family='retina', config='fgd_retina_r101_r18_digits.py',
                model='RetinaNet R18 + FGD'),
    'cwd': dict(family='retina', config='cwd_retina_r101_r18_digits.py',
                model='RetinaNet R18 + CWD'),
    'mgd': dict(family='retina', config='mgd_retina_x101_r50_digits.py',
                model='RetinaNet R18 + MGD'),
    'pkd': dict(family='retina', config='pkd_retina_x101_r50_digits.py',
                model='RetinaNet R18 + PKD'),
    'ld': dict(family='gfl', config='ld_gfl_r101_r18_digits.py',
               model='GFL R18 + LD'),
    'dkd': dict(family='faster-rcnn',
                config='dkd_faster-rcnn_r101_r18_digits.py',
                model='Faster R-CNN R18 + DKD'),
}
FULL_DATASET = (2000, 1000, 1000)
SMOKE_DATASET = (16, 16, 0)
SMOKE_ITERS = 4
DEFAULT_ITERS = 500
DEFAULT_TEACHER_ITERS = 1000
CONFIG_BATCH = 8  # train batch size of _base_/digit_scenes.py
SMOKE_BATCH = 2
IMAGE_SIZE = 128
DATASET_SEED = 0
METRIC_KEYS = {'mAP': 'coco/bbox_mAP', 'AP50': 'coco/bbox_mAP_50',
               'AP75': 'coco/bbox_mAP_75'}
TRAIN_MARKER = 'demo_train.json'
# Config keys that decide a run's trained weights (its cache identity).
TRAINING_KEYS = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper',
                 'param_scheduler', 'randomness', 'auto_scale_lr',
                 'custom_imports')
METRICS_FILE = 'metrics.json'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Distillation demo on the generated digit scenes: for '
        'each method, an R50 teacher, the R18 student baseline and the '
        'distilled R18, COCO mAP on the val split.')
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='runs, table.md, results.json and map.png go '
                        'here; finished runs found here are reused (default '
                        'work_dirs/demo)')
    parser.add_argument('--methods', nargs='+', default=['fgd'],
                        choices=[*METHODS, 'all'],
                        help='distillation methods: fgd, cwd, mgd, pkd '
                        '(RetinaNet pair), ld (GFL pair), dkd (Faster R-CNN '
                        'pair), or all. Default: fgd')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0],
                        help='training seeds of the baselines and distilled '
                        'students; the table shows mean and spread over '
                        'them (default 0)')
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations of the baselines and '
                        f'distilled students (default {DEFAULT_ITERS}; '
                        f'{SMOKE_ITERS} with --smoke)')
    parser.add_argument('--teacher-iters', type=int, default=None,
                        help='training iterations of each teacher (default '
                        f'{DEFAULT_TEACHER_ITERS}, trained longer than the '
                        'students as COCO teachers are; '
                        f'{SMOKE_ITERS} with --smoke)')
    parser.add_argument('--teacher-seed', type=int, default=0,
                        help='training seed of the teachers (default 0)')
    parser.add_argument('--eval-holdout', action='store_true',
                        help='also evaluate every run on the holdout split, '
                        'the split to choose settings such as loss weights '
                        'on (the val split is for reporting only)')
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
    args.seeds = list(dict.fromkeys(args.seeds))
    if args.iters is None:
        args.iters = SMOKE_ITERS if args.smoke else DEFAULT_ITERS
    if args.teacher_iters is None:
        args.teacher_iters = SMOKE_ITERS if args.smoke else \
            DEFAULT_TEACHER_ITERS
    if min(args.iters, args.teacher_iters) < 1:
        parser.error('--iters and --teacher-iters must be >= 1')
    if args.data_root is None:
        args.data_root = osp.join(args.work_dir, 'digit_scenes_smoke') \
            if args.smoke else 'data/digit_scenes'
    if args.batch_size is None and args.smoke:
        args.batch_size = SMOKE_BATCH
    if args.dataset_size is None:
        args.dataset_size = SMOKE_DATASET if args.smoke else FULL_DATASET
    if min(args.dataset_size[:2]) < 1 or args.dataset_size[2] < 0:
        parser.error('--dataset-size needs at least 1 train and 1 val image')
    if args.eval_holdout and args.dataset_size[2] < 1:
        parser.error('--eval-holdout needs holdout images (--dataset-size)')
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


def train_options(args: argparse.Namespace, data_root: str, iters: int,
                  seed: int) -> List[str]:
    """``--cfg-options`` of a training run of ``iters`` iterations.

    The schedule of the configs (100 warm-up iterations, cosine to 1000)
    is rescaled to ``iters``; validation during training is off, the
    evaluation is a separate ``tools/test.py`` run. The test split is the
    val split of ``data_root``: the distillation configs' TeacherSanityHook
    scores the teacher on its first batches before training.
    """
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
        f'randomness.seed={seed}',
        f'train_dataloader.dataset.data_root={data_root}/',
        'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None',
        *test_options(args, data_root, 'val'),
    ]
    if args.batch_size is not None:
        options.append(f'train_dataloader.batch_size={args.batch_size}')
    if args.smoke:
        options += ['train_dataloader.num_workers=0',
                    'train_dataloader.persistent_workers=False']
    return options


def test_options(args: argparse.Namespace, data_root: str,
                 split: str) -> List[str]:
    """``--cfg-options`` of an evaluation on ``split``: CocoMetric."""
    options = [
        f'test_dataloader.dataset.data_root={data_root}/',
        f'test_dataloader.dataset.ann_file=annotations/{split}.json',
        f'test_dataloader.dataset.data_prefix.img={split}/',
        f'test_evaluator.ann_file={data_root}/annotations/{split}.json',
    ]
    if args.smoke:
        options += ['test_dataloader.num_workers=0',
                    'test_dataloader.persistent_workers=False']
    return options


def config_digest(config: str, options: List[str]) -> str:
    """sha256 of what decides the trained weights, ``options`` applied.

    That is the resolved config's model, training data, schedule,
    optimizer and seed (:data:`TRAINING_KEYS`): a change to any of them, in
    the config files, their bases or the options, retrains the run; other
    keys (evaluation, logging, helper variables of a base file) do not.
    """
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(config)
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(
        parser.parse_args(['--cfg-options', *options]).cfg_options)
    resolved = cfg.to_dict()
    text = json.dumps({key: resolved.get(key) for key in TRAINING_KEYS},
                      sort_keys=True, default=str)
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
                       name: str, config: str, iters: int, seed: int,
                       train_opts: List[str], splits: List[str],
                       extra_signature: Optional[dict] = None) -> dict:
    """Train one run and evaluate it on ``splits``, or reuse a finished one.

    Returns:
        dict: ``signature``, ``checkpoint``, ``mAP``, ``AP50``, ``AP75``
        (percent, on the first split), the same metrics per split under
        each split's name, ``train_time_s``, ``s_per_iter``, ``cached``.
    """
    run_dir = osp.join(args.work_dir, name)
    config_path = osp.join(CONFIG_DIR, config)
    signature = dict(config=f'configs/{config}',
                     digest=config_digest(config_path, train_opts),
                     iters=iters, seed=seed, **(extra_signature or {}))
    ckpt = osp.join(run_dir, f'iter_{iters}.pth')
    marker = read_json(osp.join(run_dir, TRAIN_MARKER))
    metrics = read_json(osp.join(run_dir, METRICS_FILE))
    trained = bool(marker and marker.get('signature') == signature
                   and osp.isfile(ckpt))
    evaluated = metrics if trained and metrics and \
        metrics.get('signature') == signature else {}
    if all(split in evaluated for split in splits):
        clock.log(f'{stage} {name}: finished run found in {run_dir} '
                  f'(iter_{iters}.pth, {METRICS_FILE}), skipped: '
                  f'mAP {evaluated[splits[0]]["mAP"]:.1f}')
        return dict(evaluated, **evaluated[splits[0]], name=name,
                    checkpoint=ckpt, cached=True)
    if trained:
        clock.log(f'{stage} {name}: trained checkpoint found, training '
                  f'skipped: {ckpt}')
        train_time, s_iter = marker['train_time_s'], marker['s_per_iter']
    else:
        train_time, s_iter = train_run(clock, args, stage, name, config,
                                       iters, seed, train_opts)
        write_json(osp.join(run_dir, TRAIN_MARKER),
                   dict(signature=signature, train_time_s=train_time,
                        s_per_iter=s_iter))
    # Splits evaluated earlier for this checkpoint are kept, not re-run.
    result = dict(evaluated, signature=signature, train_time_s=train_time,
                  s_per_iter=s_iter)
    for split in splits:
        if split not in result:
            result[split] = evaluate_run(clock, args, stage, name, config,
                                         ckpt, split)
    write_json(osp.join(run_dir, METRICS_FILE), result)
    return dict(result, **result[splits[0]], name=name, checkpoint=ckpt,
                cached=False)


def train_run(clock: Clock, args: argparse.Namespace, stage: str, name: str,
              config: str, iters: int, seed: int,
              train_opts: List[str]) -> Tuple[float, Optional[float]]:
    """Train with ``tools/train.py``; return (wall s, s per iteration)."""
    run_dir = osp.join(args.work_dir, name)
    for stale in (TRAIN_MARKER, METRICS_FILE):
        if osp.exists(osp.join(run_dir, stale)):
            os.remove(osp.join(run_dir, stale))
    clock.log(f'{stage} {name}: training configs/{config}, {iters} '
              f'iterations, seed {seed} -> {run_dir}')
    train_time = run_tool(clock, name, [
        osp.join(REPO_ROOT, 'tools', 'train.py'),
        osp.join(CONFIG_DIR, config), '--work-dir', run_dir,
        '--cfg-options', *train_opts
    ], child_env(args.threads))
    if not osp.isfile(osp.join(run_dir, f'iter_{iters}.pth')):
        raise SystemExit(f'{name}: training ended without iter_{iters}.pth')
    s_iter = seconds_per_iter(run_dir)
    per_iter = f', {s_iter:.2f} s/iter' if s_iter else ''
    clock.log(f'{stage} {name}: trained in {train_time:.0f} s{per_iter}')
    return train_time, s_iter


def evaluate_run(clock: Clock, args: argparse.Namespace, stage: str,
                 name: str, config: str, ckpt: str,
                 split: str) -> Dict[str, float]:
    """Evaluate ``ckpt`` on ``split`` with ``tools/test.py`` (CocoMetric)."""
    clock.log(f'{stage} {name}: evaluating on the {split} split '
              '(CocoMetric)')
    eval_dir = osp.join(args.work_dir, name, f'eval_{split}')
    options = test_options(args, osp.abspath(args.data_root), split)
    if args.smoke:  # an untrained model scores below the 0.05 threshold
        options.append('model.student.test_cfg.score_thr=0.0' if config in
                       [m['config'] for m in METHODS.values()] else
                       'model.test_cfg.score_thr=0.0')
    eval_time = run_tool(clock, name, [
        osp.join(REPO_ROOT, 'tools', 'test.py'),
        osp.join(CONFIG_DIR, config), ckpt, '--work-dir', eval_dir,
        '--cfg-options', *options
    ], child_env(args.threads))
    metrics = read_test_metrics(clock, name, eval_dir)
    clock.log(f'{stage} {name}: {split} mAP {metrics["mAP"]:.1f}, AP50 '
              f'{metrics["AP50"]:.1f}, AP75 {metrics["AP75"]:.1f} (eval '
              f'{eval_time:.0f} s)')
    return metrics


def run_name(base: str, seed: int) -> str:
    """Work-dir folder of a run: ``base`` for seed 0, else ``base_seed<k>``.
    """
    return base if seed == 0 else f'{base}_seed{seed}'


def run_family(clock: Clock, args: argparse.Namespace, family: str,
               stages: 'StageCounter', train_opts, splits: List[str],
               data_signature: dict) -> Dict[str, dict]:
    """Train and evaluate a family's teacher, baselines and methods.

    Returns:
        dict[str, dict]: Table groups (see ``demo_report.summarise``) of
        the teacher, the baseline and each distilled method.
    """
    teacher_spec, baseline_spec = (FAMILIES[family][role]
                                   for role in ('teacher', 'baseline'))
    teacher = train_and_evaluate(
        clock, args, stages.next(), teacher_spec['name'],
        teacher_spec['config'], args.teacher_iters, args.teacher_seed,
        train_opts(args.teacher_iters, args.teacher_seed), splits,
        data_signature)
    teacher_ckpt = osp.abspath(teacher['checkpoint'])
    groups = {teacher_spec['name']: dict(
        teacher_spec, family=family, role='teacher', runs=[teacher])}
    groups[baseline_spec['name']] = dict(
        baseline_spec, family=family, role='baseline', runs=[
            train_and_evaluate(
                clock, args, stages.next(),
                run_name(baseline_spec['name'], seed),
                baseline_spec['config'], args.iters, seed,
                train_opts(args.iters, seed), splits, data_signature)
            for seed in args.seeds])
    distilled_signature = dict(data_signature,
                               teacher=teacher['signature']['digest'])
    for method in args.methods:
        spec = METHODS[method]
        if spec['family'] != family:
            continue
        groups[method] = dict(spec, name=method, role='distilled', runs=[
            train_and_evaluate(
                clock, args, stages.next(), run_name(method, seed),
                spec['config'], args.iters, seed,
                train_opts(args.iters, seed) +
                [f'model.teacher_ckpt={teacher_ckpt}'], splits,
                distilled_signature) for seed in args.seeds])
    return groups


class StageCounter:
    """Numbers the demo's stages: ``(k/total)``."""

    def __init__(self, total: int) -> None:
        self.done, self.total = 0, total

    def next(self) -> str:
        self.done += 1
        return f'({self.done}/{self.total})'


def families_of(methods: List[str]) -> List[str]:
    """The detector families ``methods`` need, in table order."""
    needed = {METHODS[method]['family'] for method in methods}
    return [family for family in FAMILIES if family in needed]


def write_reports(args: argparse.Namespace, groups: Dict[str, dict],
                  dataset_meta: dict, splits: List[str],
                  total_s: float) -> str:
    """Write table.md, results.json and map.png; return the table text."""
    num_train, num_val, num_holdout = args.dataset_size
    seeds = ', '.join(map(str, args.seeds))
    header = (
        f'Digit scenes ({num_train} train / {num_val} val / {num_holdout} '
        f'holdout images, {IMAGE_SIZE} px), batch '
        f'{args.batch_size or CONFIG_BATCH}; students {args.iters} '
        f'iterations, seeds {seeds}; teachers {args.teacher_iters} '
        f'iterations, seed {args.teacher_seed}. COCO bbox AP (%) on the val '
        'split, mean ± sample std over the seeds; gap recovered = (distilled '
        '- baseline) / (teacher - baseline).'
        + (' Holdout: the split the loss weights were chosen on.'
           if has_holdout(groups) else '')
        + f' Total wall time {total_s / 60:.0f} min.'
        + (' SMOKE RUN: the numbers mean nothing.' if args.smoke else ''))
    table = markdown_table(groups)
    with open(osp.join(args.work_dir, 'table.md'), 'w',
              encoding='utf-8') as file:
        file.write(header + '\n\n' + table)
    plot_map(groups, osp.join(args.work_dir, 'map.png'),
             f'digit scenes: students {args.iters} iters, seeds {seeds}'
             + (' (smoke)' if args.smoke else ''))
    settings = dict(iters=args.iters, teacher_iters=args.teacher_iters,
                    seeds=args.seeds, teacher_seed=args.teacher_seed,
                    batch_size=args.batch_size or CONFIG_BATCH,
                    smoke=args.smoke, data_root=args.data_root,
                    dataset=dataset_meta, methods=args.methods,
                    eval_splits=splits)
    runs = {name: dict(group, runs=[
        {key: value for key, value in run.items() if key != 'signature'}
        for run in group['runs']]) for name, group in groups.items()}
    write_json(osp.join(args.work_dir, 'results.json'),
               dict(settings=settings, units='percent (COCO bbox AP x 100)',
                    groups=runs, total_wall_s=total_s))
    return header + '\n\n' + table


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    clock = Clock(_START)
    os.makedirs(args.work_dir, exist_ok=True)
    families = families_of(args.methods)
    stages = StageCounter(1 + sum(
        1 + len(args.seeds) * (1 + sum(METHODS[m]['family'] == family
                                       for m in args.methods))
        for family in families))
    threads = args.threads or os.environ.get('OMP_NUM_THREADS') or \
        'torch default'
    clock.log(f'work dir {args.work_dir}; methods {", ".join(args.methods)};'
              f' students {args.iters} iterations, seeds '
              f'{", ".join(map(str, args.seeds))}; teachers '
              f'{args.teacher_iters} iterations; {os.cpu_count()} CPU cores, '
              f'load average {os.getloadavg()[0]:.1f}; threads per run: '
              f'{threads}, OMP_WAIT_POLICY '
              f'{child_env(args.threads)["OMP_WAIT_POLICY"]}')

    num_train, num_val, num_holdout = args.dataset_size
    stage = stages.next()
    clock.log(f'{stage} dataset: digit scenes in {args.data_root} '
              f'({num_train} train / {num_val} val / {num_holdout} holdout, '
              f'{IMAGE_SIZE} px)')
    start = time.perf_counter()
    paths = generate_digit_scenes(args.data_root, num_train=num_train,
                                  num_val=num_val, num_holdout=num_holdout,
                                  image_size=IMAGE_SIZE, seed=DATASET_SEED)
    dataset_meta = read_json(paths['meta'])
    clock.log(f'{stage} dataset ready ({time.perf_counter() - start:.0f} s)')

    data_root = osp.abspath(args.data_root)
    splits = ['val', 'holdout'] if args.eval_holdout and num_holdout \
        else ['val']
    groups: Dict[str, dict] = {}
    for family in families:
        groups.update(run_family(
            clock, args, family, stages,
            lambda iters, seed: train_options(args, data_root, iters, seed),
            splits, dict(dataset=dataset_meta)))

    summarise(groups)
    total = clock.elapsed()
    report = write_reports(args, groups, dataset_meta, splits, total)
    print('\n' + report)
    clock.log(f'wrote {osp.join(args.work_dir, "table.md")}, results.json '
              'and map.png')
    cached = [run['name'] for group in groups.values()
              for run in group['runs'] if run['cached']]
    if cached:
        clock.log(f'reused finished runs: {", ".join(cached)}')
    clock.log(f'total wall time {total:.0f} s ({total / 60:.1f} min)')


if __name__ == '__main__':
    main()
