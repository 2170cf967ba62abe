# Copyright (c) mmkd_plugin contributors.
"""End-to-end alignment of every shipped digits distillation config: a
student that *is* its teacher (the teacher's config and weights, batch
norms in eval mode) gets a distillation loss of exactly zero from every
term, and a slightly different student gets a positive one.

Zero needs the student's and the teacher's outputs paired location by
location, level by level and RoI by RoI, the teacher fed the same images,
and every normalisation applied alike: a shifted level order, a teacher
reading other RoIs or another input normalisation leaves a positive loss.
MGD is left out: its generator turns even identical features into
different ones.
"""
import pytest
import torch

from mmdet.registry import MODELS

from .conftest import load_offline_config, make_batch

CONFIGS = [
    'cwd_retina_r18-w32_r18-w8_digits.py',
    'fgd_retina_r18-w32_r18-w8_digits.py',
    'pkd_retina_r18-w32_r18-w8_digits.py',
    'ld_gfl_r18-w32_r18-w8_digits.py',
    'bckd_gfl_r18-w32_r18-w8_digits.py',
    'crosskd_gfl_r18-w32_r18-w8_digits.py',
    'kd_faster-rcnn_r18-w32_r18-w8_digits.py',
    'dkd_faster-rcnn_r18-w32_r18-w8_digits.py',
]


def self_distiller(cfg_name: str):
    """The config's distiller with the teacher's model as the student,
    the teacher's weights copied into it, both in eval mode."""
    cfg = load_offline_config(cfg_name)
    cfg.model.student.cfg_path = cfg.model.teacher.cfg_path
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.student.load_state_dict(model.teacher.state_dict())
    # The loss path, with the student's batch norms on their running
    # statistics as the teacher's are.
    model.eval()
    return model


def distill_losses(model, inputs, samples) -> dict:
    """The distiller's terms that a plain detector of the student's config
    (the teacher, here) does not have."""
    losses = model.loss(inputs, [s.clone() for s in samples])
    own = model.teacher.loss(inputs, [s.clone() for s in samples])
    keys = sorted(set(losses) - set(own))
    assert keys, 'no distillation term in the losses'
    return {key: sum(losses[key]) if isinstance(losses[key], list)
            else losses[key] for key in keys}


@pytest.mark.parametrize('cfg_name', CONFIGS)
def test_student_equal_to_teacher_has_zero_distillation_loss(
        cfg_name, one_thread):
    model = self_distiller(cfg_name)
    inputs, samples = make_batch(num_images=2, size=64, num_classes=10)
    with torch.no_grad():
        losses = distill_losses(model, inputs, samples)
        for key, value in losses.items():
            assert abs(float(value)) < 1e-5, (key, float(value))
        # The control: the same check can fail.
        for param in model.student.neck.parameters():
            param.add_(0.05 * torch.randn_like(param))
        perturbed = distill_losses(model, inputs, samples)
    for key, value in perturbed.items():
        assert float(value) > 1e-4, (key, float(value))
