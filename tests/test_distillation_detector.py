# Copyright (c) mmkd_plugin contributors.
"""DistillationDetector: configs build and train, teacher stays frozen,
errors are clear, checkpoints and export round-trip."""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.optim import build_optim_wrapper

from mmkd_plugin.utils import export_student
from .conftest import load_offline_config, make_batch



def build_detector(cfg_name='cwd_retina_r101_r18.py', teacher_ckpt=None,
                   **model_overrides):
    cfg = load_offline_config(cfg_name, teacher_ckpt)
    cfg.model.update(model_overrides)
    return MODELS.build(cfg.model), cfg


def train_step(model, optim_wrapper, num_classes=80):
    inputs, samples = make_batch(num_classes=num_classes)
    losses = model.loss(inputs, samples)
    total, log_vars = model.parse_losses(losses)
    optim_wrapper.update_params(total)
    return losses, log_vars


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_teacher_loaded_frozen_and_outside_optimizer(random_teacher_ckpt):
    probe, _ = build_detector()
    ckpt = random_teacher_ckpt(probe.teacher)
    model, cfg = build_detector(teacher_ckpt=ckpt)
    model.init_weights()
    for key, value in probe.teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[key], value), key
    model.train()
    assert model.student.training and not model.teacher.training
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    optimized = {id(p) for g in optim_wrapper.param_groups
                 for p in g['params']}
    assert not optimized & {id(p) for p in model.teacher.parameters()}
    teacher_before = snapshot(model.teacher)
    student_before = snapshot(model.student)

    optim_wrapper.zero_grad()
    inputs, samples = make_batch()
    losses = model.loss(inputs, samples)
    distill_keys = [f'loss_cwd_fpn{i}' for i in range(5)]
    assert all(key in losses for key in distill_keys), sorted(losses)
    assert all(torch.isfinite(losses[k]) and losses[k] > 0
               for k in distill_keys)
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    neck_grads = [p.grad for p in model.student.neck.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in neck_grads)
    optim_wrapper.step()
    assert all(torch.equal(v, model.teacher.state_dict()[k])
               for k, v in teacher_before.items())
    assert any(not torch.equal(v, model.student.state_dict()[k])
               for k, v in student_before.items())


def test_distill_grads_reach_student_only_through_distill_loss():
    model, _ = build_detector()
    model.train()
    inputs, samples = make_batch()
    losses = model.loss(inputs, samples)
    losses['loss_cwd_fpn2'].backward()
    # (the stem and layer1 are frozen by mmdet's ResNet frozen_stages=1)
    backbone_grad = model.student.backbone.layer4[0].conv1.weight.grad
    assert backbone_grad is not None and backbone_grad.abs().sum() > 0
    assert model.student.bbox_head.retina_cls.weight.grad is None


def test_channel_adapter_gradient():
    model, _ = build_detector(distill=[
        dict(student='backbone.layer4', teacher='neck', teacher_levels=[2],
             loss=dict(type='CWDLoss', loss_weight=1.0))
    ])
    model.train()
    key = 'loss_cwd_backbone_layer4'
    assert key in model.distill_losses
    inputs, samples = make_batch()
    losses = model.loss(inputs, samples)
    losses[key].backward()
    align = model.distill_losses[key].align
    # R18 layer4: 512 channels at stride 32; R101 P5: 256 at stride 32.
    assert isinstance(align, torch.nn.Conv2d)
    assert align.weight.grad is not None and align.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('distill, message', [
    ([dict(student='neck', teacher='backbone',
           loss=dict(type='CWDLoss'))], 'levels'),
    ([dict(student='neck.nonexistent', loss=dict(type='CWDLoss'))],
     'no module "neck.nonexistent"'),
    ([dict(student='neck', teacher='neck', levels=[0, 1],
           loss=dict(type='NoSuchLoss'))], 'unknown loss type'),
    ([dict(student='neck', teacher='neck', levels=[7],
           loss=dict(type='CWDLoss'))], 'out of range'),
    ([dict(student='backbone.layer4', teacher='neck',
           loss=dict(type='CWDLoss'))], 'teacher_levels'),
    ([dict(student='backbone', teacher='neck', levels=[0],
           loss=dict(type='CWDLoss'))], 'spatial size mismatch'),
    ([dict(student='neck', loss=dict(tau=1))], 'needs a "type"'),
    ([dict(student='neck', lvls=[0], loss=dict(type='CWDLoss'))],
     'unknown keys'),
    ([], 'empty'),
])
def test_bad_distill_config_raises_clear_error(distill, message):
    with pytest.raises(ValueError, match=message):
        build_detector(distill=distill)


def test_shape_errors_name_both_features():
    with pytest.raises(ValueError) as err:
        build_detector(distill=[
            dict(student='backbone', teacher='neck', levels=[0],
                 loss=dict(type='CWDLoss'))
        ])
    text = str(err.value)
    assert '(1, 64, 64, 64)' in text and '(1, 256, 32, 32)' in text


def test_channel_mismatch_without_adapter_raises():
    @MODELS.register_module(force=True)
    class _PlainMSE(torch.nn.Module):

        def forward(self, student_feat, teacher_feat, data_samples=None):
            return ((student_feat - teacher_feat)**2).mean()

    with pytest.raises(ValueError, match='channel mismatch'):
        build_detector(distill=[
            dict(student='backbone.layer4', teacher='neck',
                 teacher_levels=[2], loss=dict(type='_PlainMSE'))
        ])


def test_teacher_ckpt_mismatch_names_keys(tmp_path):
    model, _ = build_detector()
    state = model.teacher.state_dict()
    state.pop('neck.fpn_convs.0.conv.weight')
    state['extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': state}, path)
    model, _ = build_detector(teacher_ckpt=path)
    with pytest.raises(ValueError, match='does not match the teacher') as err:
        model.init_weights()
    assert 'neck.fpn_convs.0.conv.weight' in str(err.value)
    assert 'extra.weight' in str(err.value)
    lenient, _ = build_detector(teacher_ckpt=path, teacher_ckpt_strict=False)
    lenient.init_weights()


def test_bad_teacher_autocast_and_model_spec():
    with pytest.raises(ValueError, match='teacher_autocast'):
        build_detector(teacher_autocast='int8')
    with pytest.raises(ValueError, match='cannot load the teacher config'):
        build_detector(teacher=dict(cfg_path='mmdet::nope/missing.py'))


def test_student_init_from_teacher(random_teacher_ckpt):
    probe, _ = build_detector()
    ckpt = random_teacher_ckpt(probe.teacher)
    model, _ = build_detector(teacher_ckpt=ckpt,
                              student_init_from_teacher=['bbox_head'])
    model.init_weights()
    teacher_state = model.teacher.state_dict()
    copied = [k for k in model.student.state_dict() if k.startswith('bbox_')]
    assert copied
    for key in copied:
        assert torch.equal(model.student.state_dict()[key],
                           teacher_state[key]), key
    # R18 and R101 FPNs take different backbone channels: refuse clearly.
    bad, _ = build_detector(teacher_ckpt=ckpt,
                            student_init_from_teacher=['neck'])
    with pytest.raises(ValueError, match='mismatched weights'):
        bad.init_weights()


def test_teacher_autocast_bfloat16_runs():
    model, _ = build_detector(teacher_autocast='bfloat16')
    model.train()
    inputs, samples = make_batch()
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v) for k, v in losses.items() if 'cwd' in k)
    assert losses['loss_cwd_fpn0'].dtype == torch.float32


def record_all_calls(module):
    """Hook that keeps every output of ``module``; returns (list, handle)."""
    outputs = []
    handle = module.register_forward_hook(
        lambda mod, args, out: outputs.append(out))
    return outputs, handle


def test_shared_head_conv_distils_every_level():
    """A head conv shared by the FPN levels runs once per level: each call
    is a level with its own loss instance and log key."""
    model, _ = build_detector(distill=[
        dict(student='bbox_head.cls_convs.3', loss=dict(type='CWDLoss'))
    ])
    keys = [f'loss_cwd_bbox_head_cls_convs_3_{level}' for level in range(5)]
    assert sorted(model.distill_losses) == keys
    model.train()
    student_calls, s_hook = record_all_calls(
        model.student.bbox_head.cls_convs[3])
    teacher_calls, t_hook = record_all_calls(
        model.teacher.bbox_head.cls_convs[3])
    inputs, samples = make_batch()
    losses = model.loss(inputs, samples)
    s_hook.remove()
    t_hook.remove()
    assert len(student_calls) == len(teacher_calls) == 5
    sizes = {tuple(out.shape[-2:]) for out in student_calls}
    assert len(sizes) == 5  # five different FPN levels, not one repeated
    for level, key in enumerate(keys):
        s_feat = student_calls[level].double()
        t_feat = teacher_calls[level].double()
        num, channels = s_feat.shape[:2]
        log_p_s = s_feat.flatten(2).log_softmax(2)
        log_p_t = t_feat.flatten(2).log_softmax(2)
        expected = 10.0 * (log_p_t.exp() * (log_p_t - log_p_s)).sum() / (
            num * channels)
        torch.testing.assert_close(losses[key].double(), expected,
                                   rtol=1e-4, atol=1e-6)


def test_call_count_mismatch_and_never_run_module_raise():
    with pytest.raises(ValueError, match='runs 5 times per forward'):
        build_detector(distill=[
            dict(student='bbox_head.cls_convs.3', teacher='neck.fpn_convs.0',
                 loss=dict(type='CWDLoss'))
        ])
    with pytest.raises(ValueError, match='never ran in the forward') as err:
        build_detector(distill=[
            dict(student='bbox_head.cls_convs', loss=dict(type='CWDLoss'))
        ])
    assert 'bbox_head.cls_convs.0' in str(err.value)


@pytest.mark.parametrize('loss_type', ['KDLoss', 'LDLoss', 'MSELoss'])
def test_logit_or_mmdet_loss_on_feature_term_refused_at_build(loss_type):
    with pytest.raises(ValueError, match='cannot be used in a distill term'):
        build_detector(distill=[
            dict(student='neck', loss=dict(type=loss_type))
        ])


def test_state_dict_excludes_teacher_unless_asked():
    model, _ = build_detector()
    keys = model.state_dict().keys()
    assert not any(k.startswith('teacher.') for k in keys)
    assert any(k.startswith('student.') for k in keys)
    with_teacher, _ = build_detector(save_teacher_in_ckpt=True)
    state = with_teacher.state_dict()
    assert 'teacher.backbone.conv1.weight' in state
    model.load_state_dict(state)  # teacher keys go to the teacher
    assert torch.equal(model.teacher.backbone.conv1.weight,
                       with_teacher.teacher.backbone.conv1.weight)


def test_export_student_round_trip(tmp_path):
    model, cfg = build_detector()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    train_step(model, optim_wrapper)
    ckpt = str(tmp_path / 'distill.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = str(tmp_path / 'student.pth')
    export_student(ckpt, out)

    student_cfg = copy.deepcopy(cfg.model.student)
    from mmkd_plugin.models.utils import resolve_model_config
    student = MODELS.build(resolve_model_config(student_cfg, 'student'))
    from mmengine.runner import load_checkpoint
    load_checkpoint(student, out, strict=True)
    model.eval()
    student.eval()
    inputs, samples = make_batch(seed=3)
    with torch.no_grad():
        ours = model.predict(inputs, copy.deepcopy(samples))
        theirs = student.predict(inputs, copy.deepcopy(samples))
    for a, b in zip(ours, theirs):
        assert torch.equal(a.pred_instances.bboxes, b.pred_instances.bboxes)
        assert torch.equal(a.pred_instances.scores, b.pred_instances.scores)
    with pytest.raises(ValueError, match='not a DistillationDetector'):
        export_student(out, str(tmp_path / 'again.pth'))


def test_fgd_masks_built_once_per_step_with_per_level_values(monkeypatch):
    from mmkd_plugin.models.losses import FGDLoss
    from .test_feature_losses import ref_fgd_masks
    model, _ = build_detector(distill=[
        dict(student='neck', loss=dict(type='FGDLoss'))
    ])
    model.train()
    calls = []
    original = FGDLoss.shared_level_inputs

    def spy(data_samples, feat_hws):
        result = original(data_samples, feat_hws)
        calls.append((list(feat_hws), result))
        return result

    monkeypatch.setattr(FGDLoss, 'shared_level_inputs', staticmethod(spy))
    inputs, samples = make_batch()
    recorded = {}
    hooks = [
        getattr(model, part).neck.register_forward_hook(
            lambda m, i, out, part=part: recorded.__setitem__(part, out))
        for part in ('student', 'teacher')
    ]
    losses = model.loss(inputs, samples)
    for hook in hooks:
        hook.remove()
    assert len(calls) == 1 and len(calls[0][0]) == 5
    for level, (hw, shared) in enumerate(zip(*calls[0])):
        # The masks of each level equal a per-box loop's for that level...
        ref_fg, ref_bg = ref_fgd_masks(samples, hw)
        fg, bg = shared['masks']
        torch.testing.assert_close(fg, ref_fg.float())
        torch.testing.assert_close(bg, ref_bg.float())
        # ...and are the ones the level's loss used.
        key = f'loss_fgd_fpn{level}'
        expected = model.distill_losses[key](
            recorded['student'][level], recorded['teacher'][level],
            masks=(ref_fg.float(), ref_bg.float()))
        torch.testing.assert_close(losses[key], expected)


def test_training_without_teacher_ckpt_is_refused():
    model, _ = build_detector()
    with pytest.raises(ValueError, match='no teacher_ckpt'):
        model.init_weights()
    allowed, _ = build_detector(allow_random_teacher=True)
    allowed.init_weights()


@pytest.mark.parametrize('damage', ['truncated', 'text'])
def test_unreadable_teacher_ckpt_names_the_file(tmp_path, damage,
                                                random_teacher_ckpt):
    probe, _ = build_detector()
    good = random_teacher_ckpt(probe.teacher)
    path = tmp_path / f'{damage}.pth'
    if damage == 'truncated':
        data = open(good, 'rb').read()
        path.write_bytes(data[:len(data) // 2])
    else:
        path.write_text('this is not a checkpoint\n')
    model, _ = build_detector(teacher_ckpt=str(path))
    with pytest.raises(ValueError, match='cannot be read as a checkpoint') \
            as err:
        model.init_weights()
    assert str(path) in str(err.value)
    assert 'teacher_ckpt_strict' not in str(err.value)


def plain_student_ckpt(tmp_path, seed=1):
    """A plain mmdet checkpoint of the R18 student, random weights."""
    torch.manual_seed(seed)
    model, _ = build_detector()
    path = str(tmp_path / 'plain_student.pth')
    torch.save({'state_dict': model.student.state_dict()}, path)
    return path, model.student.state_dict()


def test_plain_student_checkpoint_loads_into_student(tmp_path,
                                                     random_teacher_ckpt):
    from mmengine.runner import load_checkpoint
    path, expected = plain_student_ckpt(tmp_path)
    model, _ = build_detector()
    load_checkpoint(model, path)  # what the runner does with load_from
    for key, value in expected.items():
        assert torch.equal(model.student.state_dict()[key], value), key

    teacher_ckpt = random_teacher_ckpt(model.teacher)
    model, _ = build_detector(teacher_ckpt=teacher_ckpt, student_ckpt=path)
    model.init_weights()
    for key, value in expected.items():
        assert torch.equal(model.student.state_dict()[key], value), key


def test_checkpoint_matching_no_student_weight_is_an_error(tmp_path):
    from mmengine.runner import load_checkpoint
    path = str(tmp_path / 'other.pth')
    torch.save({'state_dict': {'encoder.weight': torch.zeros(3)}}, path)
    model, _ = build_detector()
    with pytest.raises(ValueError, match='matches no weight of the student'):
        load_checkpoint(model, path)
