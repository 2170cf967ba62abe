# Copyright (c) mmkd_plugin contributors.
"""Every classification config builds offline and takes one training step:
teacher weights from a (random) checkpoint, every distillation term logged
and finite, gradients reaching the student and never the teacher. The
ImageNet configs sit in configs/classification/, the digit-crops proxy's
in configs/classification/digits/."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmkd_plugin.models.utils import resolve_model_config
from .conftest import CONFIG_DIR

pytest.importorskip('mmpretrain')
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

CLS_CONFIG_DIR = osp.join(CONFIG_DIR, 'classification')
CLS_CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CLS_CONFIG_DIR, '*.py')))
DIGITS_CONFIG_DIR = osp.join(CLS_CONFIG_DIR, 'digits')
DIGITS_CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(DIGITS_CONFIG_DIR, '*.py')))
DIGITS_TEACHER = 'resnet18_digits.py'
DIGITS_STUDENT = 'resnet18-w4_digits.py'


def test_every_published_row_has_a_config():
    methods = {name.split('_')[0] for name in CLS_CONFIGS}
    assert methods == {'kd', 'kd-ls', 'dkd', 'dist', 'wsld', 'ctkd',
                       'sdd-dkd', 'reviewkd'}


@pytest.mark.parametrize('cfg_name', CLS_CONFIGS)
def test_classification_config_one_train_step(cfg_name, random_teacher_ckpt,
                                              one_thread):
    cfg = Config.fromfile(osp.join(CLS_CONFIG_DIR, cfg_name))
    assert cfg.default_scope == 'mmpretrain'
    cfg.model.probe_input_size = (64, 64)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.teacher_ckpt = random_teacher_ckpt(model.teacher)
    model.init_weights()
    model.train()
    inputs = torch.randn(4, 3, 64, 64)
    samples = [DataSample().set_gt_label(label) for label in (0, 5, 999, 7)]
    losses = model.loss(inputs, samples)
    assert set(model.distill_losses.keys()) <= set(losses)
    assert model.distill_losses, 'the config distils nothing'
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    no_grad = {name for name, p in model.student.named_parameters()
               if p.requires_grad and p.grad is None}
    assert not no_grad, f'student parameters without a gradient: {no_grad}'


def test_digits_configs_are_the_proxy_set():
    """The proxy has the teacher, the student and, for every method with an
    ImageNet config, a distillation config of the same name."""
    methods = {name.split('_')[0] for name in CLS_CONFIGS}
    assert DIGITS_CONFIGS == sorted(
        [DIGITS_TEACHER, DIGITS_STUDENT] +
        [f'{method}_resnet18_resnet18-w4_digits.py' for method in methods])


def build_in_scope(model_cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(model_cfg)


@pytest.mark.parametrize('cfg_name', DIGITS_CONFIGS)
def test_digits_config_one_train_step(cfg_name, random_teacher_ckpt,
                                      one_thread):
    cfg = Config.fromfile(osp.join(DIGITS_CONFIG_DIR, cfg_name))
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.train_dataloader.dataset.type == 'CustomDataset'
    model = build_in_scope(cfg.model)
    distils = cfg.model.type == 'DistillationClassifier'
    if distils:
        model.teacher_ckpt = random_teacher_ckpt(model.teacher)
    model.init_weights()
    model.train()
    inputs = torch.randn(4, 3, 32, 32)
    samples = [DataSample().set_gt_label(label) for label in (0, 5, 9, 7)]
    losses = model.loss(inputs, samples)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    trained = model.student if distils else model
    no_grad = {name for name, p in trained.named_parameters()
               if p.requires_grad and p.grad is None}
    assert not no_grad, f'parameters without a gradient: {no_grad}'
    if distils:
        assert model.distill_losses, 'the config distils nothing'
        assert set(model.distill_losses.keys()) <= set(losses)
        assert all(p.grad is None for p in model.teacher.parameters())


@pytest.mark.parametrize('cfg_name', [
    name for name in DIGITS_CONFIGS
    if name not in (DIGITS_TEACHER, DIGITS_STUDENT)
])
def test_digits_distillation_names_the_plain_configs(cfg_name):
    """Teacher and student are the plain digits configs' models, by
    ``mmkd_plugin::`` reference, with the student's data and schedule."""
    cfg = Config.fromfile(osp.join(DIGITS_CONFIG_DIR, cfg_name))
    student_cfg = Config.fromfile(osp.join(DIGITS_CONFIG_DIR,
                                           DIGITS_STUDENT))
    teacher_cfg = Config.fromfile(osp.join(DIGITS_CONFIG_DIR,
                                           DIGITS_TEACHER))
    assert cfg.model.student.cfg_path == \
        f'mmkd_plugin::classification/digits/{DIGITS_STUDENT}'
    assert cfg.model.teacher.cfg_path == \
        f'mmkd_plugin::classification/digits/{DIGITS_TEACHER}'
    student = resolve_model_config(cfg.model.student, 'student')
    teacher = resolve_model_config(cfg.model.teacher, 'teacher')
    if set(cfg.model.student) != {'cfg_path'}:
        # DIST: only the head's init; ReviewKD: every stage out of both
        # backbones.
        assert set(cfg.model.student) in ({'cfg_path', 'head'},
                                          {'cfg_path', 'backbone'})
        if 'head' in cfg.model.student:
            assert set(cfg.model.student.head) == {'init_cfg'}
            student.head.pop('init_cfg')
        else:
            assert cfg.model.student.backbone == cfg.model.teacher.backbone \
                == dict(out_indices=(0, 1, 2, 3))
            student.backbone.out_indices = teacher.backbone.out_indices = (3, )
    assert student == student_cfg.model
    assert teacher == teacher_cfg.model
    assert student_cfg.model.backbone.base_channels * 4 == \
        teacher_cfg.model.backbone.base_channels
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper',
                'param_scheduler', 'train_cfg'):
        assert cfg[key] == student_cfg[key], key


def test_digits_data_root_follows_the_environment(monkeypatch):
    monkeypatch.setenv('DIGIT_CROPS_ROOT', '/elsewhere/crops')
    cfg = Config.fromfile(osp.join(DIGITS_CONFIG_DIR,
                                   'kd_resnet18_resnet18-w4_digits.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == '/elsewhere/crops/', loader
    monkeypatch.delenv('DIGIT_CROPS_ROOT')
    cfg = Config.fromfile(osp.join(DIGITS_CONFIG_DIR, DIGITS_STUDENT))
    assert cfg.val_dataloader.dataset.data_root == 'data/digit_crops/'


@pytest.mark.parametrize('method', ['dist', 'kd-ls'])
def test_digits_scale_invariant_losses_start_from_pytorch_default_init(
        method, random_teacher_ckpt):
    """mmpretrain's Normal(std=0.01) head init gives this student logits of
    std ~0.02, where DIST's scale-invariant Pearson terms and standardised
    logits have huge gradients and the student trains badly or not at all
    (docs/efficacy.md); those configs start the classifier like PyTorch's
    nn.Linear instead."""
    cfg = Config.fromfile(osp.join(
        DIGITS_CONFIG_DIR, f'{method}_resnet18_resnet18-w4_digits.py'))
    model = build_in_scope(cfg.model)
    model.teacher_ckpt = random_teacher_ckpt(model.teacher)
    torch.manual_seed(0)
    model.init_weights()
    weight = model.student.head.fc.weight.detach()
    bound = weight.shape[1]**-0.5
    assert weight.abs().max() <= bound
    assert weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.1)
