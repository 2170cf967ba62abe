# Copyright (c) mmkd_plugin contributors.
"""Mixed precision: under mmengine's AmpOptimWrapper the student runs in
bfloat16 autocast, the teacher in float32 (no ``teacher_autocast``), and
every distillation loss computes in float32."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.optim import build_optim_wrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper

from .conftest import load_offline_config, make_batch

AMP_WRAPPER = dict(type='AmpOptimWrapper', dtype='bfloat16',
                   optimizer=dict(type='SGD', lr=0.01, momentum=0.9))


@pytest.fixture
def cpu_amp(monkeypatch):
    """mmengine allows AmpOptimWrapper on accelerators only; its bfloat16
    autocast works on the CPU as well."""
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)


def record_outputs(module):
    outputs = []
    handle = module.register_forward_hook(
        lambda mod, args, out: outputs.append(out))
    return outputs, handle


def cwd_reference(student, teacher, loss_weight, tau=1.0):
    """CWD (Shu et al. 2021) in float64, from its definition."""
    student, teacher = student.double(), teacher.double()
    num, channels = student.shape[:2]
    log_p_s = (student.flatten(2) / tau).log_softmax(2)
    log_p_t = (teacher.flatten(2) / tau).log_softmax(2)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum()
    return loss_weight * tau**2 * kl / (num * channels)


def amp_step(cfg_name):
    cfg = load_offline_config(cfg_name)
    model = MODELS.build(cfg.model)
    model.train()
    optim_wrapper = build_optim_wrapper(model, AMP_WRAPPER)
    inputs, samples = make_batch(num_images=2, size=128, num_classes=10)
    return model, optim_wrapper, inputs, samples


def test_amp_feature_method_step(cpu_amp):
    model, optim_wrapper, inputs, samples = amp_step(
        'cwd_retina_r18-w32_r18-w8_digits.py')
    student_necks, s_hook = record_outputs(model.student.neck)
    teacher_necks, t_hook = record_outputs(model.teacher.neck)
    before = {k: v.clone() for k, v in model.student.state_dict().items()}
    with optim_wrapper.optim_context(model):
        losses = model.loss(inputs, samples)
    s_hook.remove()
    t_hook.remove()
    student_levels, teacher_levels = student_necks[0], teacher_necks[0]
    assert student_levels[0].dtype == torch.bfloat16  # autocast is on
    assert all(feat.dtype == torch.float32 for feat in teacher_levels)
    keys = sorted(k for k in losses if k.startswith('loss_cwd'))
    assert keys
    for key in keys:
        level = int(key[-1])
        loss = losses[key]
        assert loss.dtype == torch.float32
        weight = model.distill_losses[key].loss_weight
        expected = cwd_reference(student_levels[level].float(),
                                 teacher_levels[level], weight)
        torch.testing.assert_close(loss.double(), expected, rtol=1e-5,
                                   atol=1e-7)
    total, _ = model.parse_losses(losses)
    optim_wrapper.update_params(total)
    after = model.student.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values()
               if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_amp_head_method_step(cpu_amp):
    # (A two-stage student cannot run bfloat16 autocast on the CPU: mmcv's
    # CPU NMS in its RPN has no bfloat16 kernel, distillation or not.)
    model, optim_wrapper, inputs, samples = amp_step(
        'ld_gfl_r18-w32_r18-w8_digits.py')
    teacher_outputs, hook = record_outputs(model.teacher.bbox_head)
    with optim_wrapper.optim_context(model):
        losses = model.loss(inputs, samples)
    hook.remove()
    assert teacher_outputs
    flat = [t for out in teacher_outputs for t in _tensors(out)]
    assert all(t.dtype == torch.float32 for t in flat)
    assert losses['loss_ld'].dtype == torch.float32
    assert torch.isfinite(losses['loss_ld'])
    total, _ = model.parse_losses(losses)
    optim_wrapper.update_params(total)


def _tensors(output):
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in _tensors(item)]
