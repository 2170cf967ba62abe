# Copyright (c) mmkd_plugin contributors.
"""Make an FKD label store: a teacher's soft labels for stored random crops.

Usage::

    python tools/make_soft_labels.py CONFIG TEACHER_CKPT OUT \\
        [--crops 500] [--topk 5] [--fp16] [--seed 0]
    torchrun --nproc-per-node 8 tools/make_soft_labels.py CONFIG CKPT OUT

CONFIG is a classification config: its train dataset and pipeline (its
``RandomResizedCrop`` and ``RandomFlip`` settings) give the images and crops,
its model (or a ``DistillationClassifier``'s teacher) is the teacher. Each
process labels every WORLD_SIZE-th image; images already in OUT are skipped,
so an interrupted run resumes. Train the student with ``FKDReplayCrop``
(see README, FKD).
"""
import argparse
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

import mmkd_plugin  # noqa: F401
from mmkd_plugin.fkd.generator import SoftLabelGenerator
from mmkd_plugin.utils.launch import destroy_process_group


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='classification config')
    parser.add_argument('teacher_ckpt', help='teacher checkpoint')
    parser.add_argument('out', help='label store directory')
    parser.add_argument('--crops', type=int, default=500,
                        help='crops per image (M)')
    parser.add_argument('--topk', type=int, default=5,
                        help='probabilities stored per crop')
    parser.add_argument('--fp16', action='store_true',
                        help='store probabilities as float16')
    parser.add_argument('--seed', type=int, default=0, help='crop seed')
    parser.add_argument('--crops-per-batch', type=int, default=50,
                        help='crops per teacher forward')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    rank = int(os.environ.get('RANK', 0))
    world_size = int(os.environ.get('WORLD_SIZE', 1))
    if world_size > 1:  # under torchrun; gloo only for the final barrier
        torch_dist.init_process_group('gloo')
    if torch.cuda.is_available():
        device = f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
    else:
        device = 'cpu'
    try:
        generator = SoftLabelGenerator(
            Config.fromfile(args.config), args.teacher_ckpt, args.out,
            num_crops=args.crops, topk=args.topk, fp16=args.fp16,
            seed=args.seed, crops_per_batch=args.crops_per_batch,
            device=device)
        counts = generator.run(rank, world_size, progress=rank == 0)
        if world_size > 1:
            torch_dist.barrier()
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f'make_soft_labels: {err}')
    finally:
        destroy_process_group()
    print(f'\nrank {rank}: wrote {counts["written"]} images, skipped '
          f'{counts["skipped"]} already stored')
    if rank == 0:
        meta = generator.store.meta
        total = generator.store.total_bytes()
        print(f'{args.out}: {total / 2**20:.2f} MiB for '
              f'{len(generator.dataset)} images, {meta.bytes_per_image} '
              f'bytes per image ({meta.num_crops} crops x '
              f'{meta.record_dtype.itemsize} bytes)')


if __name__ == '__main__':
    main()
