# Copyright (c) mmkd_plugin contributors.
"""Batches without boxes, with crowd boxes only, or without any positive of
the student, through the full FGD, LD and DKD detectors of the digit-scale
configs.

The batches go through mmdet's own ``PackDetInputs`` (crowd boxes are
``gt_ignore_flags`` there and end up in ``ignored_instances``) and the
student's data preprocessor, as in training. Every loss must be finite,
the terms that have nothing to distil must be exactly 0, and the backward
pass must leave finite gradients.
"""
import numpy as np
import pytest
import torch
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import MODELS
from mmdet.structures.bbox import HorizontalBoxes

from .conftest import load_offline_config

SIZE = 128
CONFIGS = {
    'fgd': 'fgd_retina_r18-w32_r18-w8_digits.py',
    'ld': 'ld_gfl_r18-w32_r18-w8_digits.py',
    'dkd': 'dkd_faster-rcnn_r18-w32_r18-w8_digits.py',
}
# Per image: gt boxes and crowd boxes (xyxy, pixels of the 128x128 image).
BATCHES = {
    'no_boxes': [dict(boxes=[], crowd=[]), dict(boxes=[], crowd=[])],
    'crowd_only': [
        dict(boxes=[], crowd=[[10, 10, 60, 50]]),
        dict(boxes=[], crowd=[[30, 40, 100, 90], [5, 5, 20, 20]]),
    ],
    # 2x2-pixel boxes between the anchor centres of every level (multiples
    # of 4): ATSS needs a candidate centre inside the box, so the GFL
    # student has no positive at all.
    'no_positives': [
        dict(boxes=[[1, 1, 3, 3]], crowd=[]),
        dict(boxes=[[65, 65, 67, 67]], crowd=[[30, 40, 100, 90]]),
    ],
    # one image with a box, one with a crowd box only (a ragged batch)
    'one_empty_image': [
        dict(boxes=[[10, 10, 50, 60]], crowd=[]),
        dict(boxes=[], crowd=[[0, 0, 40, 40]]),
    ],
}
NO_GT = ('no_boxes', 'crowd_only')


@pytest.fixture(scope='module')
def built():
    """Build each config once per module (no init_weights: random
    weights, nothing loaded)."""
    cache = {}

    def get(method):
        if method not in cache:
            cfg = load_offline_config(CONFIGS[method])
            model = MODELS.build(cfg.model)
            model.train()
            cache[method] = model
        return cache[method]

    yield get
    cache.clear()


def packed_sample(boxes, crowd, seed):
    """One image and its annotations through mmdet's PackDetInputs."""
    rng = np.random.default_rng(seed)
    all_boxes = np.array(boxes + crowd, dtype=np.float32).reshape(-1, 4)
    results = dict(
        img=rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
        img_id=seed, img_path='', ori_shape=(SIZE, SIZE),
        img_shape=(SIZE, SIZE), scale_factor=(1.0, 1.0), flip=False,
        flip_direction=None,
        gt_bboxes=HorizontalBoxes(torch.from_numpy(all_boxes)),
        gt_bboxes_labels=np.full(len(all_boxes), 3, dtype=np.int64),
        gt_ignore_flags=np.array([False] * len(boxes) + [True] * len(crowd)))
    return PackDetInputs()(results)


def make_batch(model, specs):
    """Inputs and data samples of a batch, preprocessed as in training."""
    packed = [packed_sample(seed=i, **spec) for i, spec in enumerate(specs)]
    data = dict(inputs=[p['inputs'] for p in packed],
                data_samples=[p['data_samples'] for p in packed])
    data = model.data_preprocessor(data, True)
    for spec, sample in zip(specs, data['data_samples']):
        assert len(sample.gt_instances) == len(spec['boxes'])
        assert len(sample.ignored_instances) == len(spec['crowd'])
    return data['inputs'], data['data_samples']


def loss_values(losses):
    """Every logged loss as one tensor (lists are summed, as mmengine
    does)."""
    return {
        key: sum(value) if isinstance(value, (list, tuple)) else value
        for key, value in losses.items() if 'loss' in key
    }


def step(model, specs, record_necks=False):
    """One training step's losses, checked finite, then backward."""
    model.zero_grad()
    recorded, hooks = {}, []
    if record_necks:
        hooks = [
            getattr(model, part).neck.register_forward_hook(
                lambda m, i, out, part=part: recorded.__setitem__(part, out))
            for part in ('student', 'teacher')
        ]
    inputs, samples = make_batch(model, specs)
    try:
        losses = loss_values(model.loss(inputs, samples))
    finally:
        for hook in hooks:
            hook.remove()
    for key, value in losses.items():
        assert torch.isfinite(value).all(), (key, value)
    total, _ = model.parse_losses(losses)
    total.backward()
    grads = [p.grad for p in model.student.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    return losses, samples, recorded


@pytest.mark.parametrize('batch', sorted(BATCHES))
def test_fgd_detector(built, batch):
    model = built('fgd')
    losses, samples, recorded = step(model, BATCHES[batch],
                                     record_necks=True)
    keys = [key for key in losses if key.startswith('loss_fgd')]
    assert len(keys) == 4
    if batch not in NO_GT:
        return
    # No gt box (crowd boxes are not foreground): the foreground term is
    # exactly 0, so any foreground weight gives the same value.
    for level, key in enumerate(sorted(keys)):
        loss = model.distill_losses[key]
        alpha = loss.alpha_fgd
        try:
            loss.alpha_fgd = 1e6
            with torch.no_grad():
                value = loss(recorded['student'][level],
                             recorded['teacher'][level], samples)
        finally:
            loss.alpha_fgd = alpha
        assert torch.equal(value, losses[key].detach()), key
        assert losses[key] > 0  # background, attention and global terms


@pytest.mark.parametrize('batch', sorted(BATCHES))
def test_ld_detector(built, batch):
    model = built('ld')
    losses, _, _ = step(model, BATCHES[batch])
    assert losses['loss_cls'] > 0
    positive_terms = ('loss_ld', 'loss_kd_cls', 'loss_bbox', 'loss_dfl')
    if batch == 'one_empty_image':
        assert all(losses[key] > 0 for key in positive_terms)
        return
    # No positive: main LD, cls KD and GFL's box losses are exactly 0.
    for key in positive_terms:
        assert losses[key].item() == 0.0, (key, losses[key])
    if batch in NO_GT:
        # No gt box: no valuable localization region either.
        assert losses['loss_ld_vlr'].item() == 0.0


@pytest.mark.parametrize('batch', sorted(BATCHES))
def test_dkd_detector(built, batch):
    model = built('dkd')
    losses, _, _ = step(model, BATCHES[batch])
    # The sampled RoIs are distilled whatever their label (background
    # included), so DKD has something to distil.
    assert losses['loss_dkd'] > 0
    if batch in NO_GT:
        # No gt box: no positive RPN anchor or RoI, no box regression.
        assert losses['loss_rpn_bbox'].item() == 0.0
        assert losses['loss_bbox'].item() == 0.0
