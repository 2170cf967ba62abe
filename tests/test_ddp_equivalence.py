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
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmdet.registry import MODELS
from mmengine.config import ConfigDict

from mmkd_plugin.models.utils import resolve_model_config
from .conftest import load_offline_config, make_batch

pytestmark = pytest.mark.usefixtures('one_thread')

WORLD_SIZE = 2
IMAGES_PER_PROCESS = 2
IMAGE_SIZE = 64
NUM_CLASSES = 10
RTOL = 1e-5

# config, distillation loss keys, and each key's weight in the global
# gradient relative to the 2B-batch loss (1 / WORLD_SIZE: constant divisor).
CASES = {
    'cwd': ('cwd_retina_r18-w32_r18-w8_digits.py', {'loss_cwd_fpn': 1.0}),
    'fgd': ('fgd_retina_r18-w32_r18-w8_digits.py', {'loss_fgd_fpn': 1.0}),
    'ld': ('ld_gfl_r18-w32_r18-w8_digits.py', {
        'loss_ld': 1.0 / WORLD_SIZE,
        'loss_ld_vlr': 1.0 / WORLD_SIZE,
        'loss_kd_cls': 1.0,
    }),
    'dkd': ('dkd_faster-rcnn_r18-w32_r18-w8_digits.py', {'loss_dkd': 1.0}),
}
SAMPLE_ALL = 10**6
# The two processes take seconds; past this, a hang fails the test instead
# of holding CI until its own limit.
HANG_GUARD_S = 300


def model_config(method: str, teacher_ckpt: str) -> ConfigDict:
    """The method's digits model: frozen BN, an R18 teacher of the
    student's architecture, a 64 px probe; DKD samples every proposal.
    Student and teacher come resolved (no ``cfg_path``, no file parsing
    when built)."""
    cfg = load_offline_config(CASES[method][0], teacher_ckpt).model
    cfg.student = resolve_model_config(cfg.student, 'student')
    cfg.student.backbone.norm_eval = True
    cfg.teacher = copy.deepcopy(cfg.student)
    if method == 'ld':
        cfg.teacher.bbox_head.type = 'GFLHead'
        for key in ('loss_ld', 'loss_ld_vlr', 'loss_kd_cls',
                    'cls_kd_normalize', 'vlr_diou_overlap'):
            cfg.teacher.bbox_head.pop(key, None)
    if method == 'dkd':
        cfg.teacher.roi_head.type = 'StandardRoIHead'
        cfg.teacher.roi_head.pop('distill_loss', None)
        cfg.student.train_cfg.rcnn.sampler.num = SAMPLE_ALL
    cfg.probe_input_size = (IMAGE_SIZE, IMAGE_SIZE)
    return cfg


def build_model(method: str, teacher_ckpt: str):
    """Build the model, save its (random) teacher as ``teacher_ckpt`` and
    initialise it, which loads the teacher back from that file."""
    torch.manual_seed(0)
    model = MODELS.build(model_config(method, teacher_ckpt))
    torch.save({'state_dict': model.teacher.state_dict()}, teacher_ckpt)
    model.init_weights()
    return model.train()


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


def ddp_worker(rank: int, init_file: str, models: dict,
               out_dir: str) -> None:
    """One process: one DDP step per method on its share of the batch.

    Forked from the test process, so it holds copies of its models, built
    and initialised once there."""
    from mmengine.model import MMDistributedDataParallel
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=WORLD_SIZE,
                            timeout=timedelta(seconds=HANG_GUARD_S))
    try:
        inputs, samples = global_batch()
        share = slice(rank * IMAGES_PER_PROCESS,
                      (rank + 1) * IMAGES_PER_PROCESS)
        for method, model in models.items():
            ddp = MMDistributedDataParallel(module=model, device_ids=None)
            losses = ddp(inputs[share], samples[share], mode='loss')
            # the training loss: every distillation term with weight 1
            distill_loss(losses, dict.fromkeys(CASES[method][1],
                                               1.0)).backward()
            if rank == 0:
                torch.save(parameter_grads(model),
                           osp.join(out_dir, f'{method}.pth'))
            # DDP's reducer holds the process group: free it while the
            # group lives. Freed after destroy_process_group (when this
            # function returned), gloo's destructor sometimes waited forever
            # for its worker threads.
            del ddp, losses
    finally:
        dist.destroy_process_group()


def join_or_fail(context: mp.ProcessContext) -> None:
    """Wait for the worker processes (their errors are raised); kill them
    and fail if they outlive ``HANG_GUARD_S``."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
                process.join()
            pytest.fail(f'the {WORLD_SIZE} DDP processes did not end in '
                        f'{HANG_GUARD_S} s')


@pytest.fixture(scope='module')
def models_and_ddp_grads(tmp_path_factory):
    """Per method, the model (untouched) and its gradients after one DDP
    step of two processes."""
    tmp = tmp_path_factory.mktemp('ddp')
    models = {
        method: build_model(method, str(tmp / f'teacher_{method}.pth'))
        for method in CASES
    }
    join_or_fail(
        mp.start_processes(ddp_worker, nprocs=WORLD_SIZE, join=False,
                           args=(str(tmp / 'dist_init'), models, str(tmp)),
                           start_method='fork'))
    return {
        method: (models[method],
                 torch.load(tmp / f'{method}.pth', map_location='cpu'))
        for method in CASES
    }


@pytest.mark.parametrize('method', list(CASES))
def test_ddp_gradient_equals_global_batch_gradient(method,
                                                   models_and_ddp_grads):
    model, ddp = models_and_ddp_grads[method]
    inputs, samples = global_batch()
    losses = model.loss(inputs, samples)
    distill_loss(losses, CASES[method][1]).backward()
    expected = parameter_grads(model)

    assert ddp.keys() == expected.keys()
    # Parts every method's distillation reaches: backbone and neck.
    for prefix in ('student.backbone.', 'student.neck.'):
        assert any(name.startswith(prefix) and grad.abs().max() > 0
                   for name, grad in expected.items()), prefix
    # 1e-5 relative to each tensor's largest gradient, plus float32
    # round-off of the largest gradient of the model (a tensor whose exact
    # gradient is 0, e.g. an FPN bias under CWD's spatial softmax, holds
    # only that round-off).
    round_off = 1e-6 * max(grad.abs().max() for grad in expected.values())
    for name, grad in expected.items():
        torch.testing.assert_close(
            ddp[name], grad, rtol=RTOL,
            atol=RTOL * grad.abs().max().item() + round_off.item(),
            msg=lambda m: f'{method} {name}: {m}')


@pytest.mark.parametrize('loss_type', ['KDLoss', 'DKDLoss'])
def test_logit_losses_divide_by_avg_factor(loss_type):
    """``avg_factor`` (e.g. the RoI count averaged over processes) replaces
    the local sample count as divisor, clamped to at least 1."""
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 7, 5, generator=gen).double()
    labels = torch.tensor([0, 4, 4, 1, 2, 3, 0])
    loss = MODELS.build(dict(type=loss_type, temperature=2.0))
    args = (student, teacher, labels)[:3 if loss_type == 'DKDLoss' else 2]
    per_sample_mean = loss(*args)
    for avg_factor in (3.5, torch.tensor(11.0, dtype=torch.float64)):
        torch.testing.assert_close(
            loss(*args, avg_factor=avg_factor),
            per_sample_mean * 7 / float(avg_factor))
    torch.testing.assert_close(loss(*args, avg_factor=0.25),
                               per_sample_mean * 7)
