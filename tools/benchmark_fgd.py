# Copyright (c) mmkd_plugin contributors.
"""Benchmark the vectorised FGD loss against a per-box-loop implementation.

Setting: RetinaNet, a 2x3x800x1333 batch padded to 800x1344, the five FPN
levels of strides 8..128 (256 channels) and 30 random gt boxes per image.
The loop version follows the same formulas the way the authors' reference
does: masks filled box by box with Python loops and tensor-valued slices,
the feature loss through full-size weighted copies of both features, and
the global loss through the full context-block outputs. Both versions share
the same parameters (align conv and context blocks), so their values must
agree up to float error.

Both are timed as ``DistillationDetector`` runs them in training: the
masks of all five levels are built once (``FGDLoss.shared_level_inputs``,
i.e. ``fgd_masks``), then each level's loss runs forward and backward. The
mask timings (about a millisecond) interleave the two versions in blocks,
so load drift on a shared machine hits them alike.

Usage:
    python tools/benchmark_fgd.py --device cpu --threads 1 --repeats 5
"""
import argparse
import math
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor

from mmkd_plugin.models.losses.fgd_loss import FGDLoss
from mmkd_plugin.models.losses.fgd_masks import fgd_masks

IMG_HW = (800, 1333)
PAD_HW = (800, 1344)
STRIDES = (8, 16, 32, 64, 128)
CHANNELS = 256
NUM_IMAGES = 2
NUM_BOXES = 30


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed calls of the loss fwd+bwd')
    parser.add_argument('--mask-repeats', type=int, default=100,
                        help='timed calls of each mask construction')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    return parser.parse_args()


# ------------------------------------------------------------- inputs
def random_boxes(device: torch.device, gen: torch.Generator) -> Tensor:
    """NUM_BOXES xyxy boxes inside the un-padded image, sides 8..600 px."""
    img_h, img_w = IMG_HW
    size = torch.exp(
        torch.empty(NUM_BOXES, 2).uniform_(math.log(8), math.log(600),
                                           generator=gen))
    x1 = torch.rand(NUM_BOXES, generator=gen) * (img_w - 8)
    y1 = torch.rand(NUM_BOXES, generator=gen) * (img_h - 8)
    x2 = (x1 + size[:, 0]).clamp(max=img_w)
    y2 = (y1 + size[:, 1]).clamp(max=img_h)
    return torch.stack([x1, y1, x2, y2], dim=1).to(device)


def make_data_samples(boxes_list: List[Tensor]) -> List[DetDataSample]:
    samples = []
    for boxes in boxes_list:
        ds = DetDataSample()
        ds.set_metainfo(dict(img_shape=IMG_HW, batch_input_shape=PAD_HW))
        ds.gt_instances = InstanceData(bboxes=boxes)
        samples.append(ds)
    return samples


def level_shapes() -> List[Tuple[int, int]]:
    return [(math.ceil(PAD_HW[0] / s), math.ceil(PAD_HW[1] / s))
            for s in STRIDES]


# -------------------------------------------------------- loop version
def loop_masks(boxes_list: Sequence[Tensor], pad_hw: Sequence[int],
               feat_hw: Sequence[int]) -> Tuple[Tensor, Tensor]:
    """Masks filled with Python loops over images and boxes."""
    height, width = feat_hw
    pad_h, pad_w = pad_hw
    device = boxes_list[0].device
    fg = torch.zeros(len(boxes_list), height, width, device=device)
    bg = torch.ones_like(fg)
    for i, boxes in enumerate(boxes_list):
        x1 = torch.floor(boxes[:, 0] / pad_w * width).int()
        y1 = torch.floor(boxes[:, 1] / pad_h * height).int()
        x2 = torch.ceil(boxes[:, 2] / pad_w * width).int()
        y2 = torch.ceil(boxes[:, 3] / pad_h * height).int()
        area = 1.0 / (y2 + 1 - y1) / (x2 + 1 - x1)
        for j in range(len(boxes)):
            region = fg[i][y1[j]:y2[j] + 1, x1[j]:x2[j] + 1]
            fg[i][y1[j]:y2[j] + 1, x1[j]:x2[j] + 1] = torch.maximum(
                region, area[j])
        bg[i] = torch.where(fg[i] > 0, 0, 1)
        if torch.sum(bg[i]):
            bg[i] /= torch.sum(bg[i])
    return fg, bg


def loop_attention(feat: Tensor, temp: float) -> Tuple[Tensor, Tensor]:
    n, c, h, w = feat.shape
    value = feat.abs()
    spatial = h * w * F.softmax(
        (value.mean(dim=1) / temp).view(n, -1), dim=1)
    channel = c * F.softmax(value.mean(dim=(2, 3)) / temp, dim=1)
    return spatial.view(n, h, w), channel


def loop_loss(loss: FGDLoss, student: Tensor, teacher: Tensor,
              boxes_list: Sequence[Tensor]) -> Tensor:
    """FGD with loop masks and full-size weighted feature copies."""
    student = loss.align(student)
    n = student.shape[0]
    fg, bg = loop_masks(boxes_list, PAD_HW, student.shape[2:])
    sa_t, ca_t = loop_attention(teacher, loss.temp)
    sa_s, ca_s = loop_attention(student, loss.temp)
    weight = torch.sqrt(sa_t[:, None]) * torch.sqrt(ca_t[:, :, None, None])
    fea_t, fea_s = teacher * weight, student * weight
    sq_fg, sq_bg = torch.sqrt(fg[:, None]), torch.sqrt(bg[:, None])
    fg_loss = F.mse_loss(fea_s * sq_fg, fea_t * sq_fg, reduction='sum') / n
    bg_loss = F.mse_loss(fea_s * sq_bg, fea_t * sq_bg, reduction='sum') / n
    att_loss = (torch.sum(torch.abs(ca_s - ca_t)) / n +
                torch.sum(torch.abs(sa_s - sa_t)) / n)
    out_s, out_t = loss.gc_student(student), loss.gc_teacher(teacher)
    rela = F.mse_loss(out_s, out_t, reduction='sum') / n
    return (loss.alpha_fgd * fg_loss + loss.beta_fgd * bg_loss +
            loss.gamma_fgd * att_loss + loss.lambda_fgd * rela)


# -------------------------------------------------------------- timing
def timed_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, device work included."""
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timeit(fn: Callable[[], object], device: torch.device,
           repeats: int) -> float:
    """Median seconds per call after one warm-up call."""
    fn()
    times = sorted(timed_call(fn, device) for _ in range(repeats))
    return times[len(times) // 2]


def timeit_interleaved(fns: Dict[str, Callable[[], object]],
                       device: torch.device, repeats: int,
                       block: int = 10) -> Dict[str, float]:
    """Median seconds per call of each function, timed in turns.

    The functions take turns in blocks of ``block`` calls, the first call
    of each block untimed (it settles the allocator after the previous
    function), until each has ``repeats`` timed calls.
    """
    times = {name: [] for name in fns}
    while min(len(t) for t in times.values()) < repeats:
        for name, fn in fns.items():
            fn()
            times[name].extend(
                timed_call(fn, device) for _ in range(block))
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def build_inputs(device: torch.device, seed: int):
    gen = torch.Generator().manual_seed(seed)
    boxes_list = [random_boxes(device, gen) for _ in range(NUM_IMAGES)]
    students, teachers = [], []
    for hw in level_shapes():
        shape = (NUM_IMAGES, CHANNELS, *hw)
        students.append(torch.randn(shape, generator=gen).to(device))
        teachers.append(torch.randn(shape, generator=gen).to(device))
    losses = []
    for _ in STRIDES:
        loss = FGDLoss(CHANNELS, CHANNELS).to(device)
        with torch.no_grad():  # non-trivial context blocks
            for p in loss.parameters():
                p.normal_(0, 0.02)
        losses.append(loss)
    return boxes_list, students, teachers, losses


def run_losses(fn, losses, students, teachers, extra) -> List[Tensor]:
    """Apply ``fn(loss, student, teacher, extra)`` level by level."""
    return [fn(loss, s, t, extra)
            for loss, s, t in zip(losses, students, teachers)]


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    boxes_list, students, teachers, losses = build_inputs(device, args.seed)
    samples = make_data_samples(boxes_list)
    students = [s.requires_grad_() for s in students]

    def ours_masks():
        return fgd_masks(boxes_list, PAD_HW, level_shapes())

    def loops_masks():
        return [loop_masks(boxes_list, PAD_HW, hw) for hw in level_shapes()]

    def ours_step():
        level_inputs = FGDLoss.shared_level_inputs(samples, level_shapes())
        values = [
            loss(s, t, samples, **extra) for loss, s, t, extra in zip(
                losses, students, teachers, level_inputs)
        ]
        torch.stack(values).sum().backward()
        return values

    def loops_step():
        values = run_losses(loop_loss, losses, students, teachers,
                            boxes_list)
        torch.stack(values).sum().backward()
        return values

    t_mask = timeit_interleaved(dict(ours=ours_masks, loops=loops_masks),
                                device, args.mask_repeats)
    t_mask_ours, t_mask_loop = t_mask['ours'], t_mask['loops']
    t_loss_ours = timeit(ours_step, device, args.repeats)
    t_loss_loop = timeit(loops_step, device, args.repeats)

    print(f'device: {device}, torch {torch.__version__}, '
          f'threads {torch.get_num_threads()}, repeats {args.repeats} '
          f'(masks {args.mask_repeats})')
    print(f'levels: {level_shapes()}, {NUM_IMAGES} images, {NUM_BOXES} '
          f'boxes each, {CHANNELS} channels')
    print(f'mask construction (5 levels): ours {t_mask_ours * 1e3:.2f} ms, '
          f'loops {t_mask_loop * 1e3:.2f} ms, '
          f'speed-up {t_mask_loop / t_mask_ours:.1f}x '
          '(earlier builder: 16-24x on this CPU)')
    print(f'loss fwd+bwd (5 levels):      ours {t_loss_ours * 1e3:.2f} ms, '
          f'loops {t_loss_loop * 1e3:.2f} ms, '
          f'speed-up {t_loss_loop / t_loss_ours:.2f}x (target >= 1.2x)')
    print(f'  our masks are {100 * t_mask_ours / t_loss_ours:.2f}% of our '
          f'loss fwd+bwd')
    report_differences(ours_masks(), loops_masks(), losses, students,
                       teachers, samples, boxes_list)
    check_host_sync(device, ours_step)


def report_differences(masks_ours, masks_loop, losses, students, teachers,
                       samples, boxes_list) -> None:
    mask_diff = max(
        (a - b).abs().max().item()
        for ours, loop in zip(masks_ours, masks_loop)
        for a, b in zip(ours, loop))
    print(f'mask max abs difference: {mask_diff:.3e}')
    for level, (loss, s, t) in enumerate(zip(losses, students, teachers)):
        s_ours = s.detach().clone().requires_grad_()
        s_loop = s.detach().clone().requires_grad_()
        v_ours = loss(s_ours, t, samples)
        v_loop = loop_loss(loss, s_loop, t, boxes_list)
        v_ours.backward()
        v_loop.backward()
        abs_diff = (v_ours - v_loop).abs().item()
        rel_diff = abs_diff / v_loop.abs().item()
        g_diff = (s_ours.grad - s_loop.grad).abs().max().item()
        g_rel = g_diff / s_loop.grad.abs().max().item()
        print(f'level {level}: loss ours {v_ours.item():.6e} loops '
              f'{v_loop.item():.6e} | abs diff {abs_diff:.2e}, rel diff '
              f'{rel_diff:.2e} | grad max abs diff {g_diff:.2e} '
              f'(rel to max |grad| {g_rel:.2e})')


def check_host_sync(device, step: Callable[[], object]) -> None:
    if device.type != 'cuda':
        print('host sync: not checkable on CPU (no device); the loss uses '
              'no .item(), tensor-valued slicing or nonzero - run with '
              '--device cuda for torch.cuda.set_sync_debug_mode("error")')
        return
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    torch.cuda.synchronize()
    print('host sync: none - the masks and fwd+bwd of all 5 levels ran '
          'under torch.cuda.set_sync_debug_mode("error")')


if __name__ == '__main__':
    main()
