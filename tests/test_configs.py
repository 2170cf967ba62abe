# Copyright (c) mmkd_plugin contributors.
"""Every config in configs/ builds offline and takes one training step.

Distillation configs: teacher weights from a (random) checkpoint, student
initialised from the teacher where the config says so, every distillation
term logged and finite, gradients reaching the student and never the
teacher. Plain detector configs (the demo's teacher and baseline): a finite
loss that backpropagates."""
import glob
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from .conftest import CONFIG_DIR, load_offline_config, make_batch

CONFIG_NAMES = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
DISTILL_CONFIGS = [
    name for name in CONFIG_NAMES
    if load_offline_config(name).model.type == 'DistillationDetector'
]
PLAIN_CONFIGS = sorted(set(CONFIG_NAMES) - set(DISTILL_CONFIGS))


# Trainable parameters that one training step leaves without a gradient,
# by config, and why: a test fails on any other (or on one of these
# getting a gradient, so the list stays true).
NO_GRAD_ALLOWED = {}


def parameters_without_grad(module: torch.nn.Module) -> set:
    """Names of ``module``'s trainable parameters that have no gradient."""
    return {name for name, p in module.named_parameters()
            if p.requires_grad and p.grad is None}


def num_classes_of(detector) -> int:
    head = getattr(detector, 'bbox_head', None) or \
        detector.roi_head.bbox_head
    return head.num_classes


@pytest.mark.parametrize('cfg_name', PLAIN_CONFIGS)
def test_plain_config_one_train_step(cfg_name):
    model = MODELS.build(load_offline_config(cfg_name).model)
    model.init_weights()
    model.train()
    inputs, samples = make_batch(num_classes=num_classes_of(model))
    total, _ = model.parse_losses(model.loss(inputs, samples))
    assert torch.isfinite(total)
    total.backward()
    no_grad = parameters_without_grad(model)
    assert no_grad == NO_GRAD_ALLOWED.get(cfg_name, set()), \
        f'parameters without a gradient: {sorted(no_grad)}'


@pytest.mark.parametrize('cfg_name', DISTILL_CONFIGS)
def test_distill_config_one_train_step(cfg_name, random_teacher_ckpt):
    model = MODELS.build(load_offline_config(cfg_name).model)
    model.teacher_ckpt = random_teacher_ckpt(model.teacher)
    model.init_weights()  # loads the teacher, copies student_init modules
    model.train()
    teacher_before = {k: v.clone() for k, v in
                      model.teacher.state_dict().items()}

    inputs, samples = make_batch(num_classes=num_classes_of(model.student))
    losses = model.loss(inputs, samples)
    missing = set(model.distill_losses.keys()) - set(losses)
    assert not missing, f'distillation terms not logged: {missing}'
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()

    assert all(p.grad is None for p in model.teacher.parameters())
    no_grad = parameters_without_grad(model.student)
    assert no_grad == NO_GRAD_ALLOWED.get(cfg_name, set()), \
        f'student parameters without a gradient: {sorted(no_grad)}'
    no_grad = parameters_without_grad(model.distill_losses)
    assert not no_grad, f'distillation-loss parameters without a ' \
        f'gradient: {sorted(no_grad)}'
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


DIGITS_CONFIGS = [name for name in CONFIG_NAMES if name.endswith('_digits.py')]


def data_paths(cfg) -> dict:
    """Every dataset root and evaluator annotation file of a config."""
    paths = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        while 'data_root' not in dataset:  # MultiImageMixDataset and co.
            dataset = dataset.dataset
        paths[f'{loader} data_root'] = dataset.data_root
    paths.update({f'{name}.ann_file': cfg[name].ann_file
                  for name in ('val_evaluator', 'test_evaluator')})
    return paths


def test_digit_scenes_data_root_is_one_setting(tmp_path, monkeypatch):
    # A user's config outside the repository, inheriting each digits config.
    elsewhere = tmp_path / 'my_data' / 'scenes'
    for name in DIGITS_CONFIGS:
        child = tmp_path / f'child_{name}'
        child.write_text(f'_base_ = {osp.join(CONFIG_DIR, name)!r}\n')
        monkeypatch.delenv('DIGIT_SCENES_ROOT', raising=False)
        default = data_paths(Config.fromfile(str(child)))
        assert all(p.startswith('data/digit_scenes/')
                   for p in default.values()), (name, default)
        monkeypatch.setenv('DIGIT_SCENES_ROOT', str(elsewhere))
        moved = data_paths(Config.fromfile(str(child)))
        assert {k: p.replace(f'{elsewhere}/', 'data/digit_scenes/', 1)
                for k, p in moved.items()} == default, (name, moved)


def test_child_data_root_variable_does_not_propagate(tmp_path, monkeypatch):
    # Why the setting is an environment variable: mmengine resolves the
    # base file's variables before it reads the child.
    monkeypatch.delenv('DIGIT_SCENES_ROOT', raising=False)
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = {osp.join(CONFIG_DIR, DIGITS_CONFIGS[0])!r}'
                     "\ndata_root = '/elsewhere/'\n_data_root = data_root\n")
    paths = data_paths(Config.fromfile(str(child)))
    assert all(p.startswith('data/digit_scenes/') for p in paths.values())
