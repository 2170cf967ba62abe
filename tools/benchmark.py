# Copyright (c) mmkd_plugin contributors.
"""Time a distillation config: what the distillation losses add to a step.

Per iteration it prints the student-only train step, the teacher forward,
the full distillation step, and the ratio

    distill_step / (student_step + teacher_forward)

which is 1.0 when the distillation losses cost nothing. Models keep random
weights; the batch is synthetic (random images, random boxes). Peak memory
is CUDA's max allocated memory per phase, or the process's peak RSS on CPU.

Example::

    python tools/benchmark.py configs/cwd_retina_r101_r18.py --shape 800 1333
"""
import argparse
import resource
import statistics
import time
from typing import Callable, Dict, List

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmkd_plugin  # noqa: F401


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
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
    return parser.parse_args()


def synthetic_batch(args: argparse.Namespace, num_classes: int):
    """Random normalised images padded to 32 and random gt boxes."""
    height, width = (-(-s // 32) * 32 for s in args.shape)
    inputs = torch.randn(args.batch, 3, height, width, device=args.device)
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
    """The config's DistillationDetector with random weights, offline."""
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
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
    return model


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


def main() -> None:
    args = parse_args()
    model = build_model(args.config, args.device, args.teacher_autocast)
    num_classes = getattr(getattr(model.student, 'bbox_head', None),
                          'num_classes', 80)
    inputs, samples = synthetic_batch(args, num_classes)
    params = [p for p in model.parameters() if p.requires_grad]
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
        'student_step': lambda: step(model.student.loss),
        'teacher_fwd': lambda: model._teacher_features(inputs, samples),
        'distill_step': lambda: step(model.loss),
    }
    timer = PhaseTimer(args.device)
    results: Dict[str, List[dict]] = {name: [] for name in phases}
    device_name = torch.cuda.get_device_name() if timer.cuda else 'cpu'
    print(f'{args.config} | device {device_name} | batch {args.batch} x '
          f'{tuple(inputs.shape[2:])} | {args.boxes} boxes/img | '
          f'amp {args.amp} | teacher autocast {args.teacher_autocast}')
    print(f'{"iter":>4} {"student ms":>11} {"teacher ms":>11} '
          f'{"distill ms":>11} {"ratio":>7} {"peak MB (s/t/d)":>24}')
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
    median = {n: statistics.median(r['time'] for r in results[n])
              for n in phases}
    ratio = median['distill_step'] / (median['student_step'] +
                                      median['teacher_fwd'])
    print('median: ' + ', '.join(f'{n} {median[n] * 1e3:.1f} ms'
                                 for n in phases) +
          f' | ratio distill/(student+teacher) = {ratio:.3f}')


if __name__ == '__main__':
    main()
