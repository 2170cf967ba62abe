# Copyright (c) mmkd_plugin contributors.
"""Check, before distilling, that the teacher is the detector it should be."""
import copy
import logging
import math
import random
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_gather_object
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

LOG_PREFIX = 'TeacherSanityHook'


@HOOKS.register_module()
class TeacherSanityHook(Hook):
    """Evaluate the teacher before training; watch the loss ratio after.

    A wrong ``teacher_ckpt`` (another model's file loaded with
    ``teacher_ckpt_strict=False``, a checkpoint of another dataset) trains
    without any error while distilling noise. This hook makes it visible:

    1. ``before_train`` (after the weights are loaded, so also after a
       resume): the teacher alone predicts the first ``num_batches``
       batches of the config's ``val_dataloader`` (``test_dataloader`` when
       there is none), on its own re-normalised input
       (:meth:`DistillationDetector.teacher_inputs`) under ``no_grad``; a
       fresh evaluator built from ``val_evaluator`` (``test_evaluator``)
       scores it on those images only, and ``metric_key`` is logged. Below
       ``min_map`` it warns, or raises with ``on_low_map='raise'``.
    2. The first ``ratio_iters`` training iterations: the ratio of the
       distillation losses (:meth:`DistillationDetector.distill_loss_keys`)
       to the detection losses is logged per iteration; when their mean
       lies outside ``expected_ratio`` it warns: the loss weights were tuned
       for another scale, or the teacher's features are not what they were
       tuned with.

    Args:
        num_batches (int): Validation batches the teacher predicts. 0 skips
            the evaluation. Defaults to 2.
        min_map (float, optional): Lowest acceptable ``metric_key`` value
            (CocoMetric's scale: 0-1). None only logs it. Defaults to None.
        on_low_map (str): ``'warn'`` or ``'raise'`` below ``min_map``.
            Defaults to ``'warn'``.
        metric_key (str): The evaluator's result to check. Defaults to
            ``'coco/bbox_mAP'``. A CocoMetric without any detection returns
            no result; that counts as 0.
        ratio_iters (int): Iterations whose loss ratio is logged. 0 turns
            the ratio check off. Defaults to 10.
        expected_ratio (tuple[float, float], optional): ``(low, high)``
            range of the mean distillation / detection loss ratio over the
            first ``ratio_iters`` iterations. None only logs it.

    Attributes:
        teacher_metrics (dict | None): The evaluator's results of the last
            ``before_train``; None when nothing was evaluated.
        ratios (list[float]): The logged ratios, one per iteration.
    """

    priority = 'VERY_LOW'  # after every hook that loads weights

    def __init__(self,
                 num_batches: int = 2,
                 min_map: Optional[float] = None,
                 on_low_map: str = 'warn',
                 metric_key: str = 'coco/bbox_mAP',
                 ratio_iters: int = 10,
                 expected_ratio: Optional[Sequence[float]] = None) -> None:
        if num_batches < 0 or ratio_iters < 0:
            raise ValueError(f'{LOG_PREFIX}: num_batches and ratio_iters must '
                             f'be >= 0, got {num_batches} and {ratio_iters}.')
        if on_low_map not in ('warn', 'raise'):
            raise ValueError(f'{LOG_PREFIX}: on_low_map must be "warn" or '
                             f'"raise", got {on_low_map!r}.')
        if expected_ratio is not None:
            expected_ratio = tuple(float(v) for v in expected_ratio)
            if len(expected_ratio) != 2 or not \
                    0 <= expected_ratio[0] <= expected_ratio[1]:
                raise ValueError(f'{LOG_PREFIX}: expected_ratio must be '
                                 f'(low, high) with 0 <= low <= high, got '
                                 f'{expected_ratio}.')
        self.num_batches = num_batches
        self.min_map = min_map
        self.on_low_map = on_low_map
        self.metric_key = metric_key
        self.ratio_iters = ratio_iters
        self.expected_ratio: Optional[Tuple[float, float]] = expected_ratio
        self.teacher_metrics: Optional[Dict[str, float]] = None
        self.ratios: List[float] = []
        self._distill_keys: Optional[set] = None

    # ------------------------------------------------------------ teacher
    def before_train(self, runner) -> None:
        """Evaluate the teacher on the first validation batches."""
        self.teacher_metrics, self.ratios = None, []
        model = _distillation_detector(runner)
        self._distill_keys = None if model is None else \
            set(model.distill_loss_keys())
        if model is None or self.num_batches == 0:
            return
        split, loader_cfg, evaluator_cfg = _eval_configs(runner)
        if split is None:
            _log('the config has no val (or test) dataloader and evaluator: '
                 'the teacher is not evaluated.', logging.WARNING)
            return
        with _preserved_rng():
            metrics, num_images = self._evaluate_teacher(
                runner, model, loader_cfg, evaluator_cfg)
        if num_images == 0:
            _log(f'the {split} dataloader gave no images: the teacher is not '
                 'evaluated.', logging.WARNING)
            return
        self.teacher_metrics = metrics
        self._report_map(float(metrics.get(self.metric_key, 0.0)), split,
                         num_images, model.teacher_ckpt)

    def _evaluate_teacher(self, runner, model, loader_cfg: dict,
                          evaluator_cfg) -> Tuple[Dict[str, float], int]:
        """Score the teacher's predictions of the first batches.

        Returns:
            tuple[dict, int]: The evaluator's results and the number of
            images evaluated (all processes).
        """
        loader_cfg = copy.deepcopy(loader_cfg)
        # A few batches: starting worker processes costs more than loading.
        loader_cfg.update(num_workers=0, persistent_workers=False)
        loader = runner.build_dataloader(loader_cfg, seed=runner.seed)
        evaluator = runner.build_evaluator(copy.deepcopy(evaluator_cfg))
        evaluator.dataset_meta = loader.dataset.metainfo
        image_ids = []
        for index, data_batch in enumerate(loader):
            if index == self.num_batches:
                break
            with torch.no_grad():
                data = model.data_preprocessor(data_batch, False)
                predictions = model.teacher.predict(
                    model.teacher_inputs(data['inputs']),
                    data['data_samples'])
            evaluator.process(data_samples=predictions, data_batch=data_batch)
            image_ids += [sample.metainfo.get('img_id')
                          for sample in predictions]
        image_ids = [i for ids in all_gather_object(image_ids) for i in ids]
        if not image_ids:
            return {}, 0
        _restrict_to_images(evaluator, image_ids)
        return evaluator.evaluate(len(image_ids)), len(image_ids)

    def _report_map(self, value: float, split: str, num_images: int,
                    teacher_ckpt: Optional[str]) -> None:
        """Log the teacher's score; warn or raise below ``min_map``."""
        where = (f'the teacher scores {self.metric_key} {value:.4f} on the '
                 f'first {num_images} images of the {split} split '
                 f'(teacher_ckpt: {teacher_ckpt})')
        if self.min_map is None or value >= self.min_map:
            _log(where + '.', logging.INFO)
            return
        message = (f'{where}, below min_map {self.min_map}: the teacher is '
                   'not the trained detector it should be. Check that '
                   'teacher_ckpt is the checkpoint of this teacher config '
                   '(with teacher_ckpt_strict=False, mismatched weights are '
                   'skipped) and of this dataset.')
        if self.on_low_map == 'raise':
            raise RuntimeError(f'{LOG_PREFIX}: {message}')
        _log(message, logging.WARNING)

    # ------------------------------------------------------------ ratio
    def after_train_iter(self, runner, batch_idx: int,
                         data_batch=None, outputs=None) -> None:
        """Log the distillation / detection loss ratio of early iterations."""
        if (self._distill_keys is None or not outputs
                or runner.iter >= self.ratio_iters):
            return
        total = _as_float(outputs['loss'])
        distill = sum(_as_float(value) for key, value in outputs.items()
                      if key in self._distill_keys)
        detection = total - distill
        ratio = distill / detection if detection > 0 else math.inf
        self.ratios.append(ratio)
        _log(f'iter {runner.iter + 1}: distillation loss {distill:.4g} / '
             f'detection loss {detection:.4g} = {ratio:.3g}', logging.INFO)
        if runner.iter + 1 == min(self.ratio_iters, runner.max_iters):
            self._check_ratio()

    def _check_ratio(self) -> None:
        """Warn when the mean ratio lies outside ``expected_ratio``."""
        mean = sum(self.ratios) / len(self.ratios)
        summary = (f'mean distillation / detection loss ratio over '
                   f'{len(self.ratios)} iterations: {mean:.3g}')
        if self.expected_ratio is None:
            _log(summary + '.', logging.INFO)
            return
        low, high = self.expected_ratio
        if low <= mean <= high:
            _log(f'{summary}, within the expected [{low:g}, {high:g}].',
                 logging.INFO)
            return
        _log(f'{summary}, far outside the expected [{low:g}, {high:g}] that '
             'the loss weights of this config were tuned for: check the '
             'teacher checkpoint and the loss weights (they depend on the '
             'feature scale, the input size and the teacher).',
             logging.WARNING)


def _distillation_detector(runner):
    """The runner's DistillationDetector, or None (with a warning)."""
    model = runner.model.module if is_model_wrapper(runner.model) else \
        runner.model
    if not hasattr(model, 'distill_loss_keys'):
        _log(f'the model is a {type(model).__name__}, not a '
             'DistillationDetector: nothing to check.', logging.WARNING)
        return None
    return model


def _eval_configs(runner) -> Tuple[Optional[str], Optional[dict], object]:
    """(split, dataloader config, evaluator config) of val, else test."""
    for split in ('val', 'test'):
        loader_cfg = runner.cfg.get(f'{split}_dataloader')
        evaluator_cfg = runner.cfg.get(f'{split}_evaluator')
        if loader_cfg and evaluator_cfg:
            return split, loader_cfg, evaluator_cfg
    return None, None, None


def _restrict_to_images(evaluator, image_ids: list) -> None:
    """Let COCO-style metrics score only the images that were predicted.

    CocoMetric evaluates every image of its annotation file unless its
    ``img_ids`` is set; the images that were not predicted would count as
    misses.
    """
    if any(image_id is None for image_id in image_ids):
        return
    for metric in evaluator.metrics:
        if hasattr(metric, 'img_ids'):
            metric.img_ids = sorted(set(image_ids))


@contextmanager
def _preserved_rng() -> Iterator[None]:
    """Leave the random streams of training as they were.

    Iterating a dataloader draws from torch's generator; without this,
    turning the hook on would change the training run.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() \
        else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _as_float(value) -> float:
    """A logged loss (tensor or number) as a float."""
    return float(value.detach()) if isinstance(value, torch.Tensor) else \
        float(value)


def _log(message: str, level: int) -> None:
    print_log(f'{LOG_PREFIX}: {message}', logger='current', level=level)
