# Copyright (c) mmkd_plugin contributors.
"""RTMDet and YOLOX as students and teachers of a DistillationDetector, with
their own mmdet hooks (PipelineSwitchHook, YOLOXModeSwitchHook, EMAHook):
the standardised CWD of the RTMDet distillation recipe against an
independent implementation, the EMA copy sharing the teacher, the
StopDistillHook (also after a resume) and its build-time errors, and the
digit-scale RTMDet and YOLOX configs trained through their mode switch."""
import copy
import math
import os.path as osp
import uuid
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import HOOKS, MODELS
from mmengine.config import Config
from mmengine.hooks import EMAHook, Hook
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop, Runner

from mmkd_plugin.engine import StopDistillHook
from mmkd_plugin.models.losses import CWDLoss
from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
from .conftest import CONFIG_DIR, make_batch

RTMDET_DIGITS = 'cwd_rtmdet_m_s_digits.py'
YOLOX_DIGITS = 'cwd_yolox_l_s_digits.py'
CWD_KEYS = [f'loss_cwd_neck_out_convs_{level}_conv' for level in range(3)]


# ------------------------------------------------ standardised CWD (exact)
def reference_standardized_cwd(student, teacher, weight, tau, loss_weight):
    """The mmyolo connectors and CWD written out independently: conv 1x1
    without bias, BatchNorm in training mode without affine or running
    statistics on both sides, KL of per-channel spatial softmaxes."""
    student = F.conv2d(student, weight)
    student = F.batch_norm(student, None, None, training=True, eps=1e-5)
    teacher = F.batch_norm(teacher, None, None, training=True, eps=1e-5)
    num_images, num_channels = teacher.shape[:2]
    total = 0
    for n in range(num_images):
        for c in range(num_channels):
            s_logits = student[n, c].flatten() / tau
            t_logits = teacher[n, c].flatten() / tau
            p_t = torch.exp(t_logits) / torch.exp(t_logits).sum()
            log_p_s = s_logits - torch.log(torch.exp(s_logits).sum())
            total = total + (p_t * (torch.log(p_t) - log_p_s)).sum()
    return loss_weight * tau**2 * total / (num_images * num_channels)


@pytest.mark.parametrize('tau,loss_weight', [(1.0, 1.0), (2.0, 3.0)])
def test_standardized_cwd_matches_reference_values_and_grads(tau, loss_weight):
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    teacher = torch.randn(2, 4, 4, 5, generator=gen, dtype=torch.float64)
    # a low-variance channel makes BatchNorm's eps (1e-5) matter, and the
    # 40 values per channel make biased vs unbiased variance differ
    teacher[:, 1] *= 3e-3
    teacher[:, 2] += 5.0
    loss = CWDLoss(student_channels=3, teacher_channels=4, tau=tau,
                   loss_weight=loss_weight, standardize=True).double()
    assert loss.align.bias is None
    weight = loss.align.weight.detach().clone().requires_grad_(True)
    student.requires_grad_(True)
    ours = loss(student, teacher)
    ours_grads = torch.autograd.grad(ours, [student, loss.align.weight])
    ref = reference_standardized_cwd(student, teacher, weight, tau,
                                     loss_weight)
    ref_grads = torch.autograd.grad(ref, [student, weight])
    # CWDLoss computes its softmax in float32 today (float64 is kept once
    # the AMP change lands; then this tolerance can drop to 1e-10)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-8)
    for got, want in zip(ours_grads, ref_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-8)


def test_standardized_cwd_is_invariant_to_channel_affine_maps():
    """What the standardisation is for: per-channel scale and shift of the
    teacher (e.g. another BN) do not change the loss, up to BatchNorm's eps;
    without it they do."""
    gen = torch.Generator().manual_seed(1)
    student = torch.randn(2, 4, 6, 6, generator=gen, dtype=torch.float64)
    teacher = torch.randn(2, 4, 6, 6, generator=gen, dtype=torch.float64)
    scale = torch.tensor([0.5, 2.0, 5.0, 1.5], dtype=torch.float64)
    shifted = teacher * scale.view(1, 4, 1, 1) + 3.0
    for standardize, invariant in ((True, True), (False, False)):
        loss = CWDLoss(tau=1.0, loss_weight=1.0, standardize=standardize)
        same = torch.allclose(loss(student, teacher), loss(student, shifted),
                              rtol=1e-4)
        assert same is invariant


# ------------------------------------------------------------ EMA copies
def build_digits_model(cfg_name):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, cfg_name))
    return MODELS.build(cfg.model), cfg


def test_ema_copy_shares_teacher_and_averages_student_only():
    model, _ = build_digits_model(RTMDET_DIGITS)
    teacher_tensors = list(model.teacher.parameters()) + list(
        model.teacher.buffers())
    memo = {}
    copied = copy.deepcopy(model, memo)
    assert copied.teacher is model.teacher
    # nothing of the teacher was copied (deepcopy's memo maps each object
    # it met to its copy)
    for obj in [*model.teacher.modules(), *teacher_tensors]:
        assert memo.get(id(obj), obj) is obj
    assert copied.student is not model.student
    assert all(a is not b for a, b in zip(copied.student.parameters(),
                                          model.student.parameters()))

    momentum, gamma = 0.25, 100
    ema = MODELS.build(dict(type='ExpMomentumEMA', model=model,
                            momentum=momentum, gamma=gamma,
                            update_buffers=True))
    assert ema.module.teacher is model.teacher
    assert not [k for k in ema.avg_parameters if k.startswith('teacher')]
    teacher_before = {k: v.clone()
                      for k, v in model.teacher.state_dict().items()}
    ema.update_parameters(model)  # the first update copies the weights
    param = model.student.neck.out_convs[0].conv.weight
    before = param.detach().clone()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update_parameters(model)
    # ExpMomentumEMA (YOLOX, RTMDet): weight of the new value at step 1
    rate = (1 - momentum) * math.exp(-2.0 / gamma) + momentum
    averaged = ema.module.student.neck.out_convs[0].conv.weight
    torch.testing.assert_close(averaged, before + rate * 1.0)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


# ----------------------------------------------------- StopDistillHook
def fake_runner(model, max_epochs=3, loop_cls=EpochBasedTrainLoop):
    loop = loop_cls.__new__(loop_cls)  # only its type is read
    return SimpleNamespace(model=model, max_epochs=max_epochs,
                           train_loop=loop, epoch=0)


def test_stop_distill_hook_refuses_bad_input():
    for stop_epoch in (0, -1, 2.5, True, '3'):
        with pytest.raises(ValueError, match='stop_epoch must be an int'):
            HOOKS.build(dict(type='StopDistillHook', stop_epoch=stop_epoch))
    model, _ = build_digits_model(RTMDET_DIGITS)
    hook = HOOKS.build(dict(type='StopDistillHook', stop_epoch=3))
    with pytest.raises(ValueError, match='never stop'):
        hook.before_train(fake_runner(model, max_epochs=3))
    with pytest.raises(ValueError, match='iteration-based'):
        hook.before_train(fake_runner(model, 10, IterBasedTrainLoop))
    with pytest.raises(ValueError, match='not a DistillationDetector'):
        hook.before_train(fake_runner(model.student, max_epochs=10))
    hook.before_train(fake_runner(model, max_epochs=4))  # accepted


def test_stop_distill_hook_refuses_heads_that_distil_in_their_loss():
    model, _ = build_digits_model('ld_gfl_r18-w32_r18-w8_digits.py')
    assert model.self_distilling_heads == ['bbox_head']
    hook = StopDistillHook(stop_epoch=1)
    with pytest.raises(ValueError, match=r"\['bbox_head'\] distil inside"):
        hook.before_train(fake_runner(model))
    with pytest.raises(ValueError, match='cannot stop distillation'):
        model.stop_distillation()


def test_stop_distill_hook_requires_find_unused_parameters_under_ddp(
        tmp_path):
    from mmengine.model import MMDistributedDataParallel
    model, _ = build_digits_model(RTMDET_DIGITS)
    torch.distributed.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        hook = StopDistillHook(stop_epoch=1)
        for find_unused, fails in ((False, True), (True, False)):
            wrapped = MMDistributedDataParallel(
                module=model, find_unused_parameters=find_unused)
            if fails:
                with pytest.raises(ValueError,
                                   match='find_unused_parameters'):
                    hook.before_train(fake_runner(wrapped))
            else:
                hook.before_train(fake_runner(wrapped))
    finally:
        torch.distributed.destroy_process_group()


def test_stopped_detector_skips_teacher_and_distill_terms():
    model, _ = build_digits_model(RTMDET_DIGITS)
    model.train()
    assert model.bbox_head is model.student.bbox_head
    calls = []
    model.teacher.backbone.register_forward_hook(
        lambda *args: calls.append(1))
    inputs, samples = make_batch(size=64, num_classes=10)
    losses = model.loss(inputs, samples)
    assert set(CWD_KEYS) <= set(losses) and len(calls) == 1
    model.stop_distillation()
    assert model.distill_stopped
    losses = model.loss(inputs, samples)
    assert not [k for k in losses if 'cwd' in k]
    assert set(losses) == set(model.student.loss(inputs, samples))
    assert len(calls) == 1


# ------------------------------------- digit configs through mode switches
class RecordTraining(Hook):
    """Records the loss keys and teacher forwards of every iteration."""

    priority = 'LOWEST'

    def __init__(self):
        self.keys_by_epoch = {}
        self.teacher_calls_by_epoch = {}
        self._calls = []

    def before_train(self, runner):
        teacher = runner.model.teacher
        teacher.backbone.register_forward_hook(
            lambda *args: self._calls.append(runner.epoch))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.keys_by_epoch.setdefault(runner.epoch, set()).update(outputs)

    def after_train(self, runner):
        for epoch in self._calls:
            self.teacher_calls_by_epoch[epoch] = \
                self.teacher_calls_by_epoch.get(epoch, 0) + 1


@pytest.fixture(scope='module')
def digit_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('modern') / 'digit_scenes'
    generate_digit_scenes(str(root), num_train=4, num_val=2, seed=3)
    return str(root) + '/'


def runner_config(cfg_name, data_root, work_dir, teacher_ckpt, custom_hooks,
                  max_epochs=3):
    """The digits config at test scale: 2 iterations of 2 images per
    epoch, no validation, no workers, no checkpoints."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, cfg_name))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'test_{uuid.uuid4().hex}'
    cfg.visualizer.name = cfg.experiment_name
    cfg.model.teacher_ckpt = teacher_ckpt
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    dataset = loader.dataset
    if dataset.type == 'MultiImageMixDataset':
        dataset = dataset.dataset
    dataset.data_root = data_root
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = 100
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = None
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = None
    cfg.custom_hooks = custom_hooks
    return cfg


def save_random_teacher(cfg_name, path):
    model, _ = build_digits_model(cfg_name)
    torch.save({'state_dict': model.teacher.state_dict()}, path)
    return str(path)


RUNNER_KEYS = ('model', 'work_dir', 'train_dataloader', 'train_cfg',
               'optim_wrapper', 'param_scheduler', 'default_hooks',
               'custom_hooks', 'load_from', 'resume', 'env_cfg',
               'log_processor', 'visualizer', 'default_scope',
               'experiment_name')


def train(cfg):
    """Train as ``Runner.from_cfg(cfg)`` would, but without handing the
    runner the config itself, whose pretty-printing (logged and stored in
    every checkpoint) would dominate the test's time."""
    runner = Runner(**{key: cfg[key] for key in RUNNER_KEYS if key in cfg})
    record = RecordTraining()
    runner.register_hook(record)
    runner.train()
    return runner, record


def ema_hook_of(runner):
    return next(h for h in runner.hooks if isinstance(h, EMAHook))


def assert_distilled_only_in_epoch_0(record, epochs=(0, 1, 2)):
    for epoch in epochs:
        keys = record.keys_by_epoch[epoch]
        has_cwd = [k for k in CWD_KEYS if k in keys]
        assert has_cwd == (CWD_KEYS if epoch == 0 else []), (epoch, keys)
    assert set(record.teacher_calls_by_epoch) <= {0}, \
        record.teacher_calls_by_epoch


def test_rtmdet_digits_trains_through_pipeline_switch_and_stop(
        digit_data, tmp_path):
    teacher_ckpt = save_random_teacher(RTMDET_DIGITS, tmp_path / 't.pth')
    base = Config.fromfile(osp.join(CONFIG_DIR, RTMDET_DIGITS))
    hooks = [
        dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002,
             update_buffers=True, priority=49),
        dict(type='PipelineSwitchHook', switch_epoch=1,
             switch_pipeline=base.train_dataloader.dataset.pipeline[:2] +
             base.custom_hooks[1].switch_pipeline[2:]),
        dict(type='StopDistillHook', stop_epoch=1),
    ]
    cfg = runner_config(RTMDET_DIGITS, digit_data, tmp_path / 'work',
                        teacher_ckpt, hooks)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2,
                                        save_last=False)
    runner, record = train(cfg)
    assert_distilled_only_in_epoch_0(record)
    stage = [t['type'] if isinstance(t, dict) else type(t).__name__
             for t in runner.train_dataloader.dataset.pipeline.transforms]
    assert 'CachedMosaic' not in stage and 'RandomCrop' in stage, stage
    assert runner.model.distill_stopped
    assert ema_hook_of(runner).ema_model.module.teacher is \
        runner.model.teacher

    # resumed past the stop epoch: distillation stops again
    cfg = runner_config(RTMDET_DIGITS, digit_data, tmp_path / 'work',
                        teacher_ckpt, hooks)
    cfg.resume = True
    cfg.load_from = str(tmp_path / 'work' / 'epoch_2.pth')
    runner, record = train(cfg)
    assert set(record.keys_by_epoch) == {2}
    assert_distilled_only_in_epoch_0(record, epochs=(2, ))
    assert runner.model.distill_stopped


def test_yolox_digits_trains_through_mode_switch_and_stop(digit_data,
                                                          tmp_path):
    teacher_ckpt = save_random_teacher(YOLOX_DIGITS, tmp_path / 't.pth')
    hooks = [
        # switches from runner.epoch + 1 >= max_epochs - num_last_epochs
        dict(type='YOLOXModeSwitchHook', num_last_epochs=1, priority=48),
        dict(type='SyncNormHook', priority=48),
        dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001,
             update_buffers=True, priority=49),
        dict(type='StopDistillHook', stop_epoch=1),
    ]
    cfg = runner_config(YOLOX_DIGITS, digit_data, tmp_path / 'work',
                        teacher_ckpt, hooks)
    runner, record = train(cfg)
    assert_distilled_only_in_epoch_0(record)
    assert runner.model.student.bbox_head.use_l1
    assert not runner.model.teacher.bbox_head.use_l1
    assert 'loss_l1' not in record.keys_by_epoch[0]
    assert 'loss_l1' in record.keys_by_epoch[1]
    assert runner.train_dataloader.dataset._skip_type_keys == (
        'Mosaic', 'RandomAffine', 'MixUp')
    assert ema_hook_of(runner).ema_model.module.teacher is \
        runner.model.teacher
