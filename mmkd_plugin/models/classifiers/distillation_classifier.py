# Copyright (c) mmkd_plugin contributors.
"""A classifier that trains an mmpretrain student against a frozen teacher."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmpretrain.models.classifiers.base import BaseClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from ..distillers import BaseDistiller

# The student head's own loss in the wrapper's loss dict.
STUDENT_LOSS_KEY = 'loss_cls'


@MODELS.register_module()
class DistillationClassifier(BaseDistiller, BaseClassifier):
    """Wraps an mmpretrain student classifier and a frozen teacher.

    The same machinery as :class:`DistillationDetector` (see
    :class:`BaseDistiller` for the arguments and the teacher's guarantees),
    for ``ImageClassifier`` models. A ``distill`` term names module paths of
    both models: ``'backbone'`` (the stages in ``out_indices``), ``'neck'``,
    ``'head'`` (the logits, (B, num_classes)) or any dotted path. Logit
    losses (KD, DKD, DIST, WSLD, CTKD) go on ``'head'``; they get the
    samples' hard labels when they take ``labels`` (the mixed label with
    the larger share under mixup / cutmix). Feature losses (FitNet, CWD,
    PKD, MGD, ReviewKD) go on backbone stages; SDD on the last stage.

    Example::

        model = dict(
            type='DistillationClassifier',
            student='mmpretrain::resnet/resnet18_8xb32_in1k.py',
            teacher='mmpretrain::resnet/resnet34_8xb32_in1k.py',
            teacher_ckpt='https://download.openmmlab.com/...',
            distill=[dict(student='head', loss=dict(type='DISTLoss',
                                                    loss_weight=2.0))])

    Args:
        student_loss_weight (float): Factor on the student's own losses
            (cross-entropy, label smoothing, mixup targets: whatever its
            head computes), e.g. 0.1 for CTKD's CIFAR recipe. Defaults to 1.
        **kwargs: The arguments of :class:`BaseDistiller`.
    """

    registry = MODELS
    source_tags = {'backbone': 'backbone', 'neck': 'neck', 'head': 'logits'}
    accepts_logit_losses = True
    default_preprocessor = 'ClsDataPreprocessor'

    def __init__(self, *args, student_loss_weight: float = 1.0,
                 **kwargs) -> None:
        if student_loss_weight < 0:
            raise ValueError('DistillationClassifier: student_loss_weight '
                             f'must be >= 0, got {student_loss_weight}.')
        self.student_loss_weight = student_loss_weight
        super().__init__(*args, **kwargs)

    def _probe_data_samples(self, size: Tuple[int, int]) -> List[DataSample]:
        """One empty classification sample for the blank probe image."""
        return [DataSample()]

    def _run_head_forward(self, model: nn.Module, inputs: Tensor,
                          data_samples: list) -> None:
        """The classifier up to its head's logits."""
        model(inputs, mode='tensor')

    def _hard_labels(self, data_samples: List[DataSample]) -> Tensor:
        """Each sample's class: its ``gt_label``, or under mixup / cutmix
        (``gt_score``) the class with the largest share.

        Returns:
            Tensor: Labels (B, ), long.
        """
        if all('gt_score' in sample for sample in data_samples):
            return torch.stack([s.gt_score for s in data_samples]).argmax(1)
        labels = [sample.gt_label for sample in data_samples]
        if any(label.numel() != 1 for label in labels):
            raise ValueError(
                'DistillationClassifier: a logit loss that takes labels '
                'needs one class per sample, got gt_labels of sizes '
                f'{[label.numel() for label in labels]} (multi-label?).')
        return torch.cat(labels).long()

    def _student_losses(self, batch_inputs: Tensor,
                        data_samples: list) -> Dict[str, Tensor]:
        """The student head's losses, times ``student_loss_weight``.

        mmpretrain's heads return their loss under ``'loss'``, the key
        mmengine logs the summed total under (the head's value would
        replace the total in the log), so it is renamed ``'loss_cls'``.
        """
        losses = self.student.loss(batch_inputs, data_samples)
        if 'loss' in losses:
            losses[STUDENT_LOSS_KEY] = losses.pop('loss')
        return {
            key: value * self.student_loss_weight if 'loss' in key else value
            for key, value in losses.items()
        }

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """``'loss'``: distillation; ``'predict'`` / ``'tensor'``: the
        student alone."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.student(inputs, mode='tensor')
        raise RuntimeError(f'Invalid mode "{mode}".')

    def predict(self, inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        """Predict with the student alone."""
        return self.student.predict(inputs, data_samples, **kwargs)

    def extract_feat(self, inputs: Tensor, stage: str = 'neck'):
        """The student's features."""
        return self.student.extract_feat(inputs, stage=stage)
