# Copyright (c) mmkd_plugin contributors.
"""TeacherSanityHook with mmengine's runner on a tiny digit-scenes set: a
random teacher is reported (its mAP logged, a warning below min_map, an
error with on_low_map='raise'), a perfect teacher scores 1.0 on exactly the
images it predicted, on its own re-normalised input under no_grad; the
distillation / detection loss ratio is logged and equals the ratio of the
logged losses, and a ratio far outside expected_ratio warns."""
import math
import os.path as osp
import uuid
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from mmkd_plugin.engine import TeacherSanityHook
from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
from .conftest import CONFIG_DIR

DIGITS_CONFIG = osp.join(CONFIG_DIR, 'cwd_retina_r18-w32_r18-w8_digits.py')
NUM_VAL = 8
DISTILL_KEYS = [f'loss_cwd_fpn{level}' for level in range(4)]


@pytest.fixture(scope='module')
def scenes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('sanity') / 'digit_scenes'
    generate_digit_scenes(str(root), num_train=8, num_val=NUM_VAL, seed=3)
    return str(root)


def build_runner(scenes_root, work_dir, teacher_ckpt, hook, max_iters,
                 monkeypatch, teacher_overrides=None) -> Runner:
    """The CWD digits config on the tiny set, with ``hook`` only."""
    monkeypatch.setenv('DIGIT_SCENES_ROOT', scenes_root)
    cfg = Config.fromfile(DIGITS_CONFIG)
    cfg.model.teacher_ckpt = teacher_ckpt
    cfg.model.teacher.update(teacher_overrides or {})
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=2, num_workers=0,
                           persistent_workers=False)
    cfg.train_cfg.update(max_iters=max_iters, val_begin=10**6)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 10**6
    cfg.custom_hooks = [hook]
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'sanity_{uuid.uuid4().hex[:8]}'
    return Runner.from_cfg(cfg)


def sanity_hook(runner) -> TeacherSanityHook:
    (hook, ) = [h for h in runner.hooks if isinstance(h, TeacherSanityHook)]
    return hook


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    """A randomly initialised digits teacher, saved as a checkpoint."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(DIGITS_CONFIG)
    teacher = MODELS.build(cfg.model).teacher
    path = str(tmp_path_factory.mktemp('teacher') / 'random_teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, path)
    return path


def test_random_teacher_reported_ratio_logged(scenes_root, tmp_path,
                                              teacher_ckpt, monkeypatch,
                                              capfd):
    hook = dict(type='TeacherSanityHook', num_batches=1, min_map=0.5,
                ratio_iters=2, expected_ratio=(1000.0, 2000.0))
    runner = build_runner(scenes_root, tmp_path / 'work', teacher_ckpt, hook,
                          2, monkeypatch)
    runner.train()
    log = capfd.readouterr().out
    sanity = sanity_hook(runner)

    # The random teacher: evaluated, its mAP logged and flagged.
    assert sanity.teacher_metrics is not None
    teacher_map = sanity.teacher_metrics.get('coco/bbox_mAP', 0.0)
    assert teacher_map < 0.5
    assert f'the teacher scores coco/bbox_mAP {teacher_map:.4f} on the ' \
        'first 2 images of the val split' in log
    assert 'below min_map 0.5' in log

    # The ratio of each iteration, from the runner's own loss history.
    history = runner.message_hub.log_scalars
    loss_keys = [k[len('train/'):] for k in history
                 if k.startswith('train/loss_')]
    assert set(DISTILL_KEYS) <= set(loss_keys)
    detection_keys = [k for k in loss_keys if k not in DISTILL_KEYS]
    assert detection_keys  # loss_cls, loss_bbox
    expected = []
    for it in range(2):
        distill = sum(history[f'train/{k}'].data[0][it]
                      for k in DISTILL_KEYS)
        detection = sum(history[f'train/{k}'].data[0][it]
                        for k in detection_keys)
        expected.append(distill / detection)
    assert sanity.ratios == pytest.approx(expected, rel=1e-5)
    assert 'iter 1: distillation loss' in log
    assert 'iter 2: distillation loss' in log
    assert 'far outside the expected [1000, 2000]' in log

    # The same check before another run, set to refuse.
    sanity.on_low_map = 'raise'
    with pytest.raises(RuntimeError, match='below min_map 0.5'):
        sanity.before_train(runner)


def test_perfect_teacher_scores_one_on_its_images(scenes_root, tmp_path,
                                                  teacher_ckpt, monkeypatch,
                                                  capfd):
    # The teacher's own preprocessor does not normalise (mean 0, std 1):
    # the hook must give it raw pixels, not the student's input.
    raw_pixels = dict(data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[0.0, 0.0, 0.0],
        std=[1.0, 1.0, 1.0], bgr_to_rgb=True, pad_size_divisor=32))
    hook = dict(type='TeacherSanityHook', num_batches=2, min_map=0.9,
                ratio_iters=1)
    runner = build_runner(scenes_root, tmp_path / 'work', teacher_ckpt, hook,
                          1, monkeypatch, teacher_overrides=raw_pixels)
    calls = []

    def predict_ground_truth(batch_inputs, batch_data_samples, rescale=True):
        calls.append((batch_inputs.min().item(), batch_inputs.max().item(),
                      torch.is_grad_enabled()))
        for sample in batch_data_samples:
            gt = sample.gt_instances
            sample.pred_instances = InstanceData(
                bboxes=gt.bboxes.clone(), labels=gt.labels.clone(),
                scores=torch.ones(len(gt.labels)))
        return batch_data_samples

    runner.model.teacher.predict = predict_ground_truth
    runner.train()
    log = capfd.readouterr().out
    sanity = sanity_hook(runner)

    assert len(calls) == 2  # num_batches
    for low, high, grad_enabled in calls:
        assert not grad_enabled
        assert low >= 0.0 and high > 50.0  # pixels, not normalised values
    # 4 of the 8 val images predicted: scored on those 4 alone, perfect.
    assert sanity.teacher_metrics['coco/bbox_mAP'] == pytest.approx(1.0)
    assert 'first 4 images of the val split' in log
    assert 'below min_map' not in log
    assert len(sanity.ratios) == 1 and math.isfinite(sanity.ratios[0])


class _FakeDetector:

    def distill_loss_keys(self):
        return ['loss_cwd_fpn0', 'loss_ld']


@pytest.mark.parametrize('expected_ratio, warns', [((1.0, 3.0), False),
                                                  ((4.0, 8.0), True),
                                                  (None, False)])
def test_ratio_uses_distill_keys_and_warns_outside_range(
        expected_ratio, warns, capfd):
    # A logger of this test's own, writing to the captured output.
    MMLogger.get_instance(f'sanity_{uuid.uuid4().hex[:8]}')
    hook = TeacherSanityHook(num_batches=0, ratio_iters=2,
                             expected_ratio=expected_ratio)
    runner = SimpleNamespace(model=_FakeDetector(), iter=0, max_iters=100)
    hook.before_train(runner)
    # total 4 = detection 1.5 (cls 1 + bbox 0.5) + distillation 2.5;
    # then detection 1 + distillation 1.5; 'acc' is not a loss.
    steps = [dict(loss=4.0, loss_cls=1.0, loss_bbox=0.5, loss_cwd_fpn0=2.0,
                  loss_ld=0.5, acc=90.0),
             dict(loss=2.5, loss_cls=1.0, loss_cwd_fpn0=1.0, loss_ld=0.5,
                  acc=95.0)]
    for it, outputs in enumerate(steps):
        runner.iter = it
        hook.after_train_iter(runner, it, outputs=outputs)
    runner.iter = 2  # past ratio_iters: not logged
    hook.after_train_iter(runner, 2, outputs=steps[0])
    assert hook.ratios == pytest.approx([2.5 / 1.5, 1.5 / 1.0])
    log = capfd.readouterr().out
    assert 'over 2 iterations: 1.58' in log
    assert ('far outside' in log) is warns


@pytest.mark.parametrize('kwargs, message', [
    (dict(on_low_map='ignore'), 'on_low_map'),
    (dict(expected_ratio=(3.0, 1.0)), 'expected_ratio'),
    (dict(num_batches=-1), 'num_batches'),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TeacherSanityHook(**kwargs)
