# Copyright (c) mmkd_plugin contributors.
"""Exact resume: N iterations straight equal N/2, a crash, ``resume=True``
(what ``tools/train.py --resume`` sets) and the remaining N/2.

For CWD (with a channel-align conv), FGD (GC blocks) and MGD (generator and
random mask stream) on the digit-scenes configs, shrunk to 64 px scenes and
an R18 teacher: the final checkpoints of both schedules hold bit-identical
student weights, distillation-loss parameters, optimizer and scheduler
states. The teacher is not in the checkpoints (``save_teacher_in_ckpt``
False), so the resumed run must have reloaded it from ``teacher_ckpt``.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmdet.registry import MODELS
from mmengine.runner import Runner

from mmkd_plugin.models.utils import resolve_model_config
from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
from .conftest import load_offline_config

pytestmark = pytest.mark.usefixtures('one_thread')

NUM_ITERS = 4
IMAGE_SIZE = 64
CONFIGS = {
    'cwd': 'cwd_retina_r18-w32_r18-w8_digits.py',
    'fgd': 'fgd_retina_r18-w32_r18-w8_digits.py',
    'mgd': 'mgd_retina_r18-w32_r18-w8_digits.py',
}


class SimulatedCrash(Exception):
    """Raised by :class:`CrashAfter` to stop a run like a killed job."""


class CrashAfter(Hook):
    """Stop training after iteration ``iters`` (after its checkpoint)."""

    priority = 'LOWEST'  # after CheckpointHook's after_train_iter

    def __init__(self, iters: int) -> None:
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.iters:
            raise SimulatedCrash


@pytest.fixture(scope='module')
def digit_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume') / 'digit_scenes'
    generate_digit_scenes(str(root), num_train=8, num_val=1,
                          image_size=IMAGE_SIZE, seed=3)
    return str(root)


def small_teacher(cfg: Config, method: str) -> None:
    """Teacher = the digit R18 student architecture (fast); for CWD with a
    32-channel FPN and head, so that CWD needs its channel-align conv."""
    teacher = copy.deepcopy(cfg.model.student)
    if method == 'cwd':
        teacher.neck.out_channels = 32
        teacher.bbox_head.in_channels = 32
        teacher.bbox_head.feat_channels = 32
    cfg.model.teacher = teacher


def train_config(method: str, data_root: str, teacher_ckpt: str,
                 work_dir: str) -> Config:
    """The method's digits config: 64 px, batch 2, N iterations, no val,
    a checkpoint every N/2 iterations, fixed seed."""
    cfg = load_offline_config(CONFIGS[method], teacher_ckpt)
    # resolved once here: no mmdet config parsing at every model build
    cfg.model.student = resolve_model_config(cfg.model.student, 'student')
    small_teacher(cfg, method)
    cfg.model.probe_input_size = (IMAGE_SIZE, IMAGE_SIZE)
    cfg.model.save_teacher_in_ckpt = False
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = data_root
    for step in loader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = (IMAGE_SIZE, IMAGE_SIZE)
    cfg.train_cfg.update(max_iters=NUM_ITERS, val_interval=10**6)
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg',
                'test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg[key] = None
    cfg.default_hooks.checkpoint.update(interval=NUM_ITERS // 2,
                                        max_keep_ckpts=2)
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    cfg.work_dir = work_dir
    cfg.load_from = None
    cfg.resume = False
    cfg.log_level = 'WARNING'
    return cfg


def run(cfg: Config, resume: bool = False, crash_after: int = None):
    """Train as ``tools/train.py`` does (``--resume`` sets ``resume``).

    The Runner is built from the config's parts rather than with
    ``Runner.from_cfg``, only to skip pretty-printing the config (about
    30 s of yapf per run on this machine); training is the same.
    """
    cfg = copy.deepcopy(cfg)
    runner = Runner(
        model=cfg.model, work_dir=cfg.work_dir,
        train_dataloader=cfg.train_dataloader, train_cfg=cfg.train_cfg,
        optim_wrapper=cfg.optim_wrapper,
        param_scheduler=cfg.param_scheduler,
        default_hooks=cfg.default_hooks, env_cfg=cfg.env_cfg,
        log_processor=cfg.log_processor, log_level=cfg.log_level,
        randomness=cfg.randomness, default_scope=cfg.default_scope,
        resume=resume, load_from=None,
        experiment_name=f'{osp.basename(cfg.work_dir)}_{resume}')
    if crash_after is not None:
        runner.register_hook(CrashAfter(crash_after), priority='LOWEST')
        with pytest.raises(SimulatedCrash):
            runner.train()
    else:
        runner.train()
    return runner


def save_random_teacher(cfg: Config, path: str) -> dict:
    """Save the teacher of a model built under another seed; return it."""
    torch.manual_seed(123)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher_ckpt = None
    teacher_state = MODELS.build(model_cfg).teacher.state_dict()
    torch.save({'state_dict': teacher_state}, path)
    return teacher_state


def assert_same(a, b, where: str) -> None:
    """Recursive bit-exact equality of checkpoint parts."""
    if isinstance(a, torch.Tensor):
        same_kind = isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and a.shape == b.shape
        if not (same_kind and torch.equal(a, b)):
            diff = (a.double() - b.double()).abs().max().item() \
                if same_kind else 'dtype or shape differs'
            raise AssertionError(f'{where}: max |difference| {diff}')
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), \
            f'{where}: {sorted(a)} vs {sorted(b)}'
        for key in a:
            assert_same(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{index}]')
    else:
        assert a == b, f'{where}: {a!r} vs {b!r}'


def load(path: str) -> dict:
    return torch.load(path, map_location='cpu')  # weights_only, as users


# Parameters of the distillation losses (under ``distill_losses.``) that
# must train and resume.
LOSS_PARAMS = {
    'cwd': ['loss_cwd_fpn0.align.weight'],
    'fgd': ['loss_fgd_fpn0.gc_student.channel_add_conv.0.weight',
            'loss_fgd_fpn0.gc_teacher.conv_mask.weight'],
    'mgd': ['loss_mgd_fpn0.generation.0.weight',
            'loss_mgd_fpn3.generation.2.bias'],
}


@pytest.mark.parametrize('method', sorted(CONFIGS))
def test_resume_is_exact_and_reloads_teacher(method, digit_root, tmp_path):
    teacher_ckpt = str(tmp_path / 'teacher.pth')
    straight_cfg = train_config(method, digit_root, teacher_ckpt,
                                str(tmp_path / 'straight'))
    teacher_state = save_random_teacher(straight_cfg, teacher_ckpt)
    split_cfg = copy.deepcopy(straight_cfg)
    split_cfg.work_dir = str(tmp_path / 'split')
    half, last = NUM_ITERS // 2, f'iter_{NUM_ITERS}.pth'

    run(straight_cfg)
    run(split_cfg, crash_after=half)
    assert not osp.exists(osp.join(split_cfg.work_dir, last))
    resumed = run(split_cfg, resume=True)
    assert resumed.iter == NUM_ITERS

    straight = load(osp.join(straight_cfg.work_dir, last))
    split = load(osp.join(split_cfg.work_dir, last))
    assert not any(k.startswith('teacher.') for k in split['state_dict'])
    for part in ('state_dict', 'optimizer', 'param_schedulers'):
        assert_same(straight[part], split[part], f'{method} {part}')

    # The losses' own parameters are checkpointed and trained.
    halfway = load(osp.join(split_cfg.work_dir, f'iter_{half}.pth'))
    for key in LOSS_PARAMS[method]:
        key = 'distill_losses.' + key
        assert not torch.equal(split['state_dict'][key],
                               halfway['state_dict'][key]), key
    if method == 'mgd':  # one mask per level and iteration
        state = split['state_dict']
        assert state['distill_losses.loss_mgd_fpn0._extra_state'][
            'mask_step'] == NUM_ITERS

    # The resumed teacher came from teacher_ckpt, not from a random init.
    resumed_teacher = resumed.model.teacher.state_dict()
    assert_same(resumed_teacher, teacher_state, f'{method} teacher')
    torch.manual_seed(0)
    fresh = MODELS.build(copy.deepcopy(split_cfg.model)).teacher
    assert not all(
        torch.equal(value, teacher_state[key])
        for key, value in fresh.state_dict().items()
        if value.is_floating_point())
