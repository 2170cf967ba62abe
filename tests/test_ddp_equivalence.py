# Copyright (c) mmkd_plugin contributors.
"""DDP computes what each method prescribes for the global batch.

Two gloo processes, each holding B = 2 images of a fixed 2B = 4 image batch,
run one loss + backward through mmengine's ``MMDistributedDataParallel``
(which averages the gradients over processes). A single process then
computes, independently, the gradient the method defines for the whole 2B
batch, and both must agree to 1e-5 (relative to each parameter's largest
gradient) on every parameter of the student and of the distillation losses.

Only the distillation losses are compared: mmdet's own detection losses
are added with weight 0, so that every parameter takes part in the
backward (DDP without ``find_unused_parameters``, as users run it) while
their own normalisers (e.g. RetinaNet's per-process positive count) stay
mmdet's business. BatchNorm is frozen (``norm_eval=True``) so the forward
of an image does not depend on the other images of its process.

What the global-batch gradient is, per method:

- CWD (per image and channel, / (N * C)) and FGD (per image, / N, with
  per-image background masks and context blocks): the 2B-batch loss.
- LD (GFL): ``loss_kd_cls`` normalised by the positive count, averaged over
  processes (mmdet's ``reduce_mean``): the 2B-batch loss. The main LD and
  VLR terms divide by a constant (the authors' ``normalize='constant'``),
  so each process's loss is a sum over its own positives and DDP's
  averaging makes the global gradient that of the 2B-batch sum divided by
  the number of processes, as in the authors' multi-GPU runs.
- DKD on RoIs: averaged over the sampled RoIs of the global batch, i.e.
  each process divides its sum by the RoI count averaged over processes.
  Every proposal is sampled here (a sampler size beyond any proposal count,
  so no random choice), which makes the RoI counts of the two processes
  differ.
"""
import copy
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmdet.registry import MODELS
from mmengine.config import ConfigDict

from .conftest import load_offline_config, make_batch

WORLD_SIZE = 2
IMAGES_PER_PROCESS = 2
IMAGE_SIZE = 64
NUM_CLASSES = 10
RTOL = 1e-5

# config, distillation loss keys, and each key's weight in the global
# gradient relative to the 2B-batch loss (1 / WORLD_SIZE: constant divisor).
CASES = {
    'cwd': ('cwd_retina_r101_r18_digits.py', {'loss_cwd_fpn': 1.0}),
    'fgd': ('fgd_retina_r101_r18_digits.py', {'loss_fgd_fpn': 1.0}),
    'ld': ('ld_gfl_r101_r18_digits.py', {
        'loss_ld': 1.0 / WORLD_SIZE,
        'loss_ld_vlr': 1.0 / WORLD_SIZE,
        'loss_kd_cls': 1.0,
    }),
    'dkd': ('dkd_faster-rcnn_r101_r18_digits.py', {'loss_dkd': 1.0}),
}
SAMPLE_ALL = 10**6


def model_config(method: str, teacher_ckpt: str) -> ConfigDict:
    """The method's digits model: frozen BN, an R18 teacher of the
    student's architecture, a 64 px probe; DKD samples every proposal."""
    cfg = load_offline_config(CASES[method][0], teacher_ckpt).model
    cfg.student.backbone.norm_eval = True
    cfg.teacher = copy.deepcopy(cfg.student)
    if method == 'ld':
        cfg.teacher.bbox_head.type = 'GFLHead'
        for key in ('loss_ld', 'loss_ld_vlr', 'loss_kd_cls'):
            cfg.teacher.bbox_head.pop(key, None)
    if method == 'dkd':
        cfg.teacher.roi_head.type = 'StandardRoIHead'
        cfg.teacher.roi_head.pop('distill_loss', None)
        cfg.student.train_cfg.rcnn.sampler.num = SAMPLE_ALL
    cfg.probe_input_size = (IMAGE_SIZE, IMAGE_SIZE)
    return cfg


def build_model(method: str, teacher_ckpt: str):
    torch.manual_seed(0)
    model = MODELS.build(model_config(method, teacher_ckpt))
    model.init_weights()
    return model


def global_batch():
    return make_batch(WORLD_SIZE * IMAGES_PER_PROCESS, IMAGE_SIZE,
                      NUM_CLASSES, seed=5)


def distill_loss(losses: dict, weights: dict) -> torch.Tensor:
    """Weighted sum of the distillation terms (keys starting with a stem of
    ``weights``) plus 0 x every other loss."""
    total, used = 0.0, set()
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        value = sum(value) if isinstance(value, (list, tuple)) else value
        stems = [stem for stem in weights if key.startswith(stem)]
        stem = max(stems, key=len) if stems else None
        total = total + value * (weights[stem] if stem else 0.0)
        used.add(stem)
    assert used - {None} == set(weights), (sorted(losses), sorted(weights))
    return total


def parameter_grads(model) -> dict:
    return {
        name: param.grad.detach().clone()
        for name, param in model.named_parameters() if param.grad is not None
    }


def ddp_worker(rank: int, init_file: str, teacher_ckpts: dict,
               out_dir: str) -> None:
    """One process: one DDP step per method on its share of the batch."""
    from mmengine.model import MMDistributedDataParallel
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=WORLD_SIZE)
    try:
        inputs, samples = global_batch()
        share = slice(rank * IMAGES_PER_PROCESS,
                      (rank + 1) * IMAGES_PER_PROCESS)
        for method, teacher_ckpt in teacher_ckpts.items():
            model = build_model(method, teacher_ckpt).train()
            ddp = MMDistributedDataParallel(module=model, device_ids=None)
            losses = ddp(inputs[share], samples[share], mode='loss')
            distill_loss(losses, CASES[method][1]).backward()
            if rank == 0:
                torch.save(parameter_grads(model),
                           osp.join(out_dir, f'{method}.pth'))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope='module')
def ddp_grads(tmp_path_factory):
    """Teacher checkpoints and the DDP gradients of every method."""
    tmp = tmp_path_factory.mktemp('ddp')
    teacher_ckpts = {}
    for method in CASES:
        path = str(tmp / f'teacher_{method}.pth')
        torch.manual_seed(123)
        cfg = model_config(method, None)
        torch.save({'state_dict': MODELS.build(cfg).teacher.state_dict()},
                   path)
        teacher_ckpts[method] = path
    mp.spawn(ddp_worker, nprocs=WORLD_SIZE, join=True,
             args=(str(tmp / 'dist_init'), teacher_ckpts, str(tmp)))
    return {
        method: (teacher_ckpts[method],
                 torch.load(tmp / f'{method}.pth', map_location='cpu'))
        for method in CASES
    }


@pytest.mark.parametrize('method', list(CASES))
def test_ddp_gradient_equals_global_batch_gradient(method, ddp_grads):
    teacher_ckpt, ddp = ddp_grads[method]
    model = build_model(method, teacher_ckpt)
    model.train()
    inputs, samples = global_batch()
    losses = model.loss(inputs, samples)
    distill_loss(losses, CASES[method][1]).backward()
    expected = parameter_grads(model)

    assert ddp.keys() == expected.keys()
    # Parts every method's distillation reaches: backbone and neck.
    for prefix in ('student.backbone.', 'student.neck.'):
        assert any(name.startswith(prefix) and grad.abs().max() > 0
                   for name, grad in expected.items()), prefix
    for name, grad in expected.items():
        scale = grad.abs().max().item()
        torch.testing.assert_close(ddp[name], grad, rtol=RTOL,
                                   atol=RTOL * scale,
                                   msg=lambda m: f'{method} {name}: {m}')
