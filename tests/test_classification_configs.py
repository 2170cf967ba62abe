# Copyright (c) mmkd_plugin contributors.
"""Every classification config builds offline and takes one training step:
teacher weights from a (random) checkpoint, every distillation term logged
and finite, gradients reaching the student and never the teacher."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from .conftest import CONFIG_DIR

pytest.importorskip('mmpretrain')
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

CLS_CONFIG_DIR = osp.join(CONFIG_DIR, 'classification')
CLS_CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CLS_CONFIG_DIR, '*.py')))


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
