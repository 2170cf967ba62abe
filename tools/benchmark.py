# Copyright (c) mmkd_plugin contributors.
"""Time a distillation config: what the distillation losses add to a step.

Per iteration it prints the student-only train step, the teacher forward,
the full distillation step, and the ratio

    distill_step / (student_step + teacher_forward)

which is 1.0 when the distillation losses cost nothing. Heads that run
teacher head layers on purpose get a fourth phase: for CrossKD the teacher
head's forward on the teacher's features, then its layers after ``idx`` on
the student's features, forward and backward (``crosskd_head``); for LD and
BCKD the teacher head's forward on the teacher's features
(``teacher_head``). The rest

    distill_step / (student_step + teacher_fwd + <that phase>)

is what everything else costs. ``--count-syncs`` (CUDA) runs each phase
once more under ``torch.cuda.set_sync_debug_mode('warn')`` and counts the
host-device synchronisations. ``--count-ops`` (any device) runs each phase
once more and counts the aten ops it dispatches, forward and backward,
views excluded: each is host work and, on a GPU, most launch a kernel, so
on a launch-bound step the ops that the distillation step adds over the
other phases (``extra``) are what its overhead is made of. The count does
not depend on the device: it can be measured and reduced on a CPU. Models
keep random weights; the batch is synthetic (random images, random boxes).
Peak memory is CUDA's max allocated memory per phase, or the process's peak
RSS on CPU.

``--demo-pairs`` runs every distillation config of the efficacy benchmark
(tools/demo.py, ``mmkd_plugin.efficacy.proxy.METHODS``) at its scale
(batch 8 of 64x64, 4 boxes per image), each in its own
process so that CPU peak memory is per config, and prints a markdown table.

Classifier configs get one random label per image (``--shape 224 224``).

Examples::

    python tools/benchmark.py configs/cwd_retina_r101_r18.py --shape 800 1333
    python tools/benchmark.py configs/classification/dist_r34_r18_in1k.py \
        --shape 224 224 --batch 32
    python tools/benchmark.py --demo-pairs --iters 10
"""
import argparse
import inspect
import json
import os.path as osp
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Optional

import torch
from mmdet.registry import MODELS as DET_MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import InstanceData
from mmpretrain.structures import DataSample
from torch.utils._python_dispatch import TorchDispatchMode

import mmkd_plugin  # noqa: F401
from mmkd_plugin.efficacy.proxy import METHODS
from mmkd_plugin.models.classifiers import DistillationClassifier
from mmkd_plugin.models.utils import resolve_model_config


CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                      'configs')
DEMO_SHAPE, DEMO_BATCH, DEMO_BOXES = (64, 64), 8, 4
PHASES = ('student_step', 'teacher_fwd', 'distill_step')
CROSSKD_PHASE = 'crosskd_head'
TEACHER_HEAD_PHASE = 'teacher_head'
TEACHER_HEAD_PHASES = (CROSSKD_PHASE, TEACHER_HEAD_PHASE)
# Student heads that distil inside their own loss and the plain mmdet head
# each extends: the student-only step of LD / BCKD / CrossKD / DKD runs the
# plain head (the distilling head's own arguments dropped).
PLAIN_HEADS = {
    'LDGFLHead': 'GFLHead',
    'BCKDGFLHead': 'GFLHead',
    'DistillRoIHead': 'StandardRoIHead',
    **{f'CrossKD{head}Head': f'{head}Head'
       for head in ('GFL', 'ATSS', 'FCOS', 'Retina')},
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?')
    parser.add_argument('--demo-pairs', action='store_true',
                        help='benchmark every demo config at demo scale '
                        '(overrides --shape, --batch, --boxes)')
    parser.add_argument('--json-out', help='write the medians here')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--shape', type=int, nargs=2, default=(800, 1333),
                        metavar=('H', 'W'))
    parser.add_argument('--boxes', type=int, default=30,
                        help='gt boxes per image')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default='cuda'
                        if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', action='store_true',
                        help='bfloat16 autocast for the whole step')
    parser.add_argument('--teacher-autocast', choices=['bfloat16', 'float16'],
                        help="the detector's teacher_autocast option")
    parser.add_argument('--count-syncs', action='store_true',
                        help='count host-device syncs per phase (CUDA)')
    parser.add_argument('--count-ops', action='store_true',
                        help='count the aten ops (views excluded) each phase '
                        'dispatches, forward and backward')
    args = parser.parse_args(argv)
    if args.count_syncs and not args.device.startswith('cuda'):
        parser.error('--count-syncs needs a CUDA --device')
    if (args.config is None) == (not args.demo_pairs):
        parser.error('give a CONFIG or --demo-pairs (not both)')
    if args.config is not None and not osp.isfile(args.config):
        parser.error(f'config not found: {args.config}')
    if args.iters < 1 or args.warmup < 0:
        parser.error('--iters must be >= 1 and --warmup >= 0')
    return args


def synthetic_batch(args: argparse.Namespace, num_classes: int,
                    classify: bool = False):
    """Random normalised images padded to 32 and random gt boxes (or, to
    ``classify``, one random label per image)."""
    height, width = (-(-s // 32) * 32 for s in args.shape)
    inputs = torch.randn(args.batch, 3, height, width, device=args.device)
    if classify:
        labels = torch.randint(0, num_classes, (args.batch, ))
        return inputs, [DataSample().set_gt_label(int(label)).to(args.device)
                        for label in labels]
    samples = []
    for _ in range(args.batch):
        xy = torch.rand(args.boxes, 2) * torch.tensor([width, height]) * 0.8
        wh = 8 + torch.rand(args.boxes, 2) * torch.tensor([width, height]) / 4
        instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1).to(args.device),
            labels=torch.randint(0, num_classes, (args.boxes, ),
                                 device=args.device))
        samples.append(DetDataSample(
            gt_instances=instances,
            metainfo=dict(img_shape=tuple(args.shape),
                          ori_shape=tuple(args.shape),
                          pad_shape=(height, width),
                          batch_input_shape=(height, width),
                          scale_factor=(1.0, 1.0))))
    return inputs, samples


def build_model(config: str, device: str, teacher_autocast=None):
    """The config's distillation model (detector or classifier) with random
    weights, offline, and the plain student it trains (its own module unless
    a student head distils inside its loss). Built in the config's default
    scope, which is left as it was."""
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmdet')):
        return _build_model(cfg, device, teacher_autocast)


def _build_model(cfg: Config, device: str, teacher_autocast=None):
    for part in ('student', 'teacher'):
        part_cfg = cfg.model[part]
        if isinstance(part_cfg, str):
            cfg.model[part] = part_cfg = dict(cfg_path=part_cfg)
        backbone = part_cfg.get('backbone', {})
        backbone['init_cfg'] = None
        part_cfg['backbone'] = backbone
    cfg.model.teacher_ckpt = None
    cfg.model.teacher_autocast = teacher_autocast
    model = MODELS.build(cfg.model).to(device)
    model.train()
    student_cfg = resolve_model_config(cfg.model.student, 'student')
    if not _make_heads_plain(student_cfg):
        return model, model.student
    plain_student = MODELS.build(student_cfg).to(device)
    plain_student.train()
    return model, plain_student


def _make_heads_plain(student_cfg: dict) -> bool:
    """Turn distilling heads of ``student_cfg`` into their mmdet heads in
    place; return whether there was one."""
    found = False
    for key in ('bbox_head', 'roi_head'):
        head = student_cfg.get(key)
        if head is not None and head.get('type') in PLAIN_HEADS:
            plain = PLAIN_HEADS[head['type']]
            for arg in _init_args(head['type']) - _init_args(plain):
                head.pop(arg, None)
            head['type'] = plain
            found = True
    return found


def _init_args(model_type: str) -> set:
    """Names of the ``__init__`` arguments of an mmdet head type."""
    return set(
        inspect.signature(DET_MODELS.get(model_type).__init__).parameters)


class PhaseTimer:
    """Times callables with device synchronisation and peak memory."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith('cuda')

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, fn: Callable[[], None]) -> Dict[str, float]:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        elapsed = time.perf_counter() - start
        if self.cuda:
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return dict(time=elapsed, peak_mb=peak)


def benchmark_config(args: argparse.Namespace) -> dict:
    """Time the three phases of ``args.config``; print a row per iteration.

    Returns:
        dict: Median ms per phase, the ratio of the medians and the
        largest peak memory (MB) per phase.
    """
    model, student = build_model(args.config, args.device,
                                 args.teacher_autocast)
    inputs, samples = synthetic_batch(
        args, _num_classes(model.student),
        classify=isinstance(model, DistillationClassifier))
    params = [p for p in model.parameters() if p.requires_grad]
    if student is not model.student:
        params += list(student.parameters())
    optimizer = torch.optim.SGD(params, lr=1e-5, momentum=0.9)
    autocast = torch.autocast(args.device.split(':')[0],
                              dtype=torch.bfloat16, enabled=args.amp)

    def step(loss_fn):
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            losses = loss_fn(inputs, samples)
        total, _ = model.parse_losses(losses)
        total.backward()
        optimizer.step()

    phases = {
        'student_step': lambda: step(student.loss),
        'teacher_fwd': lambda: model._teacher_features(inputs, samples),
        'distill_step': lambda: step(model.loss),
    }
    phases.update(teacher_head_phase(model, inputs, samples))
    timer = PhaseTimer(args.device)
    results: Dict[str, List[dict]] = {name: [] for name in phases}
    device_name = torch.cuda.get_device_name() if timer.cuda else 'cpu'
    targets = 'one label/img' if isinstance(
        model, DistillationClassifier) else f'{args.boxes} boxes/img'
    print(f'{args.config} | device {device_name} | batch {args.batch} x '
          f'{tuple(inputs.shape[2:])} | {targets} | '
          f'amp {args.amp} | teacher autocast {args.teacher_autocast}')
    titles = dict(student_step='student ms', teacher_fwd='teacher ms',
                  distill_step='distill ms', crosskd_head='CrossKD ms',
                  teacher_head='t-head ms')
    print(f'{"iter":>4} ' + ' '.join(f'{titles[n]:>11}' for n in phases)
          + f' {"ratio":>7} {"peak MB per phase":>24}')
    for it in range(args.warmup + args.iters):
        row = {name: timer(fn) for name, fn in phases.items()}
        if it < args.warmup:
            continue
        for name in phases:
            results[name].append(row[name])
        ratio = row['distill_step']['time'] / (
            row['student_step']['time'] + row['teacher_fwd']['time'])
        peaks = '/'.join(f'{row[n]["peak_mb"]:.0f}' for n in phases)
        print(f'{it - args.warmup:>4} '
              + ' '.join(f'{row[n]["time"] * 1e3:>11.1f}' for n in phases)
              + f' {ratio:>7.3f} {peaks:>24}')
    summary = summarise_phases(results)
    print('median: ' + ', '.join(f'{n} {summary["median_ms"][n]:.1f} ms'
                                 for n in phases) +
          f' | ratio distill/(student+teacher) = {summary["ratio"]:.3f}')
    extra = [n for n in TEACHER_HEAD_PHASES if n in phases]
    if extra:
        print(f'ratio distill/(student+teacher+{extra[0]}) = '
              f'{summary["rest_ratio"]:.3f}')
    if args.count_syncs:
        summary['syncs'] = {name: count_syncs(fn)
                            for name, fn in phases.items()}
        print('host-device syncs per phase: ' + ', '.join(
            f'{n} {c}' for n, c in summary['syncs'].items()))
    if args.count_ops:
        summary['ops'] = {name: count_ops(fn) for name, fn in phases.items()}
        summary['extra_ops'] = summary['ops']['distill_step'] - sum(
            count for name, count in summary['ops'].items()
            if name != 'distill_step')
        print('aten ops per phase: ' + ', '.join(
            f'{n} {c}' for n, c in summary['ops'].items()) +
              f' | extra {summary["extra_ops"]}')
    return dict(config=args.config, device=device_name, **summary)


def count_syncs(fn: Callable[[], None]) -> int:
    """How many synchronising CUDA calls one run of ``fn`` makes."""
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return sum('synchronizing CUDA operation' in str(w.message)
               for w in caught)


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched while it is active (views apart)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], None]) -> int:
    """How many aten ops (views excluded) one run of ``fn`` dispatches,
    its backward passes included."""
    with OpCounter() as counter:
        fn()
    return counter.count


def teacher_head_phase(model, inputs, samples) -> Dict[str, Callable]:
    """The phase timing the teacher head work a student head adds on
    purpose: ``{crosskd_head: fn}`` for CrossKD heads, ``{teacher_head:
    fn}`` for heads that run the teacher head on its own features (LD,
    BCKD), else ``{}``."""
    head = getattr(model.student, 'bbox_head', None)
    if hasattr(head, 'cross_head_pass'):
        return {CROSSKD_PHASE: crosskd_head_phase(model, inputs, samples)}
    if not hasattr(head, '_teacher_forward'):
        return {}
    teacher_neck = model._teacher_features(inputs, samples)['neck']
    with torch.no_grad():
        cls_scores = head(model.student.extract_feat(inputs))[0]

    def run() -> None:
        with head.teacher_step(teacher_neck, model.teacher_autocast):
            head._teacher_forward(cls_scores)

    return {TEACHER_HEAD_PHASE: run}


def crosskd_head_phase(model, inputs, samples) -> Callable:
    """For a student with a CrossKD dense head, a callable doing the
    teacher head work CrossKD adds: the teacher head on the teacher's neck
    features (no gradient), then the teacher's layers after ``idx`` on the
    student's holds, forward and backward.

    The student's holds are computed once here, outside the timing, as
    leaves that take gradients.
    """
    head = model.student.bbox_head
    teacher_neck = model._teacher_features(inputs, samples)['neck']
    with torch.no_grad():
        feats = model.student.extract_feat(inputs)
        (cls_scores, *_), holds = head.forward_holding(feats)
    holds = [tuple(h.detach().requires_grad_() for h in pair)
             for pair in holds]

    def run() -> None:
        with head.teacher_step(teacher_neck, model.teacher_autocast):
            _, teacher_holds = head._teacher_pass(cls_scores)
            outs = head.cross_head_pass(holds, teacher_holds)
        sum(out.sum() for maps in outs for out in maps).backward()

    return run


def summarise_phases(results: Dict[str, List[dict]]) -> dict:
    """Medians of the timed iterations of each phase.

    Args:
        results (dict[str, list[dict]]): Per phase (:data:`PHASES`), one
            ``dict(time=<s>, peak_mb=<MB>)`` per timed iteration.

    Returns:
        dict: ``median_ms`` per phase, ``ratio`` = median distillation step
        / (median student step + median teacher forward), ``peak_mb``, the
        largest peak memory of each phase, and with a phase of
        :data:`TEACHER_HEAD_PHASES`, ``rest_ratio`` = the distillation step
        / (the same sum + that phase).
    """
    median_ms = {name: 1e3 * statistics.median(r['time'] for r in runs)
                 for name, runs in results.items()}
    expected = median_ms['student_step'] + median_ms['teacher_fwd']
    ratio = median_ms['distill_step'] / expected
    peak_mb = {name: max(r['peak_mb'] for r in runs)
               for name, runs in results.items()}
    summary = dict(median_ms=median_ms, ratio=ratio, peak_mb=peak_mb)
    for name in TEACHER_HEAD_PHASES:
        if name in median_ms:
            summary['rest_ratio'] = median_ms['distill_step'] / (
                expected + median_ms[name])
    return summary


def _num_classes(student: torch.nn.Module) -> int:
    """Classes of a classifier's head, of a one-stage head or of a
    two-stage RoI box head."""
    head = getattr(student, 'head', None) or getattr(student, 'bbox_head',
                                                    None)
    if head is None:
        head = getattr(getattr(student, 'roi_head', None), 'bbox_head', None)
    return getattr(head, 'num_classes', 80)


def benchmark_demo_pairs(args: argparse.Namespace) -> None:
    """Run every demo config in a fresh process; print a markdown table."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in [method['config'] for method in METHODS.values()]:
            out = osp.join(tmp, config + '.json')
            command = [
                sys.executable, osp.abspath(__file__),
                osp.join(CONFIG_DIR, config), '--device', args.device,
                '--iters', str(args.iters), '--warmup', str(args.warmup),
                '--batch', str(DEMO_BATCH), '--boxes', str(DEMO_BOXES),
                '--shape', *map(str, DEMO_SHAPE), '--json-out', out
            ] + (['--amp'] if args.amp else [])
            subprocess.run(command, check=True)
            with open(out, encoding='utf-8') as file:
                rows.append(json.load(file))
    cuda = args.device.startswith('cuda')
    # CPU peak RSS only grows within a process, so it cannot be split by
    # phase: one column, the process peak (model build included).
    memory = 'peak CUDA MB (student / teacher / distill)' if cuda else \
        'process peak RSS MB'
    print(f'\n{len(rows)} demo configs, device {rows[0]["device"]}, batch '
          f'{DEMO_BATCH} x {DEMO_SHAPE}, median of {args.iters} iterations'
          f'\n\n| config | student step ms | teacher fwd ms | distill step '
          f'ms | ratio | teacher head ms | ratio with it | {memory} |\n'
          '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    for row in rows:
        ms, peak = row['median_ms'], row['peak_mb']
        peaks = [peak[n] for n in PHASES] if cuda else [max(peak.values())]
        head_ms = [ms[n] for n in TEACHER_HEAD_PHASES if n in ms]
        head = (f'{head_ms[0]:.1f} | {row["rest_ratio"]:.3f}'
                if head_ms else '- | -')
        print(f'| {osp.basename(row["config"])} | '
              + ' | '.join(f'{ms[n]:.1f}' for n in PHASES)
              + f' | {row["ratio"]:.3f} | {head} | '
              + ' / '.join(f'{value:.0f}' for value in peaks) + ' |')


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.demo_pairs:
        benchmark_demo_pairs(args)
        return
    summary = benchmark_config(args)
    if args.json_out:
        with open(args.json_out, 'w', encoding='utf-8') as file:
            json.dump(summary, file, indent=2)


if __name__ == '__main__':
    main()
