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

from .conftest import CONFIG_DIR, load_offline_config, make_batch

CONFIG_NAMES = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
DISTILL_CONFIGS = [
    name for name in CONFIG_NAMES
    if load_offline_config(name).model.type == 'DistillationDetector'
]
PLAIN_CONFIGS = sorted(set(CONFIG_NAMES) - set(DISTILL_CONFIGS))


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
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)


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
    trainable = [p for p in model.student.parameters() if p.requires_grad]
    assert sum(p.grad is not None for p in trainable) > 0.9 * len(trainable)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
