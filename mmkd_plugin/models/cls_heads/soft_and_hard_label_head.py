# Copyright (c) mmkd_plugin contributors.
"""A linear classification head trained on soft labels and the true class.

Online KD keeps a share of the true-label cross-entropy next to the
teacher's soft targets (Hinton et al., "Distilling the Knowledge in a
Neural Network", 2015, https://arxiv.org/abs/1503.02531). FKD (Shen and
Xing, ECCV 2022, https://arxiv.org/abs/2112.01528) trains on the replayed
soft labels alone; mmpretrain's heads take either the soft label
(``gt_score``) or the class (``gt_label``), never both. This head takes
both, so stored labels can replay online KD's whole loss.
"""
from typing import Dict, List

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor


@MODELS.register_module()
class SoftAndHardLabelClsHead(LinearClsHead):
    """``LinearClsHead`` whose loss is its ``loss`` on the soft labels
    plus ``hard_label_loss`` on the ground-truth classes::

        losses = {'loss': loss(z, gt_score), 'loss_hard': hard(z, gt_label)}

    With ``loss=SoftLabelLoss(temperature=T, loss_weight=1 - a)`` and
    ``hard_label_loss=CrossEntropyLoss(loss_weight=a)`` on labels that hold
    the teacher's full softmax, this is KD's loss ``a CE + (1 - a) T^2 KL``
    up to a constant (the target's entropy).

    Every training sample needs both labels: ``gt_label`` from the
    dataset and ``gt_score`` from a soft-label transform such as
    ``FKDReplayCrop``. Batch mixup or cutmix mix ``gt_score`` only, so the
    hard term would see each image's own class; use the soft term alone
    there.

    Args:
        hard_label_loss (dict): Loss of the logits against the classes.
            Defaults to ``CrossEntropyLoss`` with weight 0.1 (KD's CIFAR
            setting, as in the digits KD config).
        **kwargs: ``LinearClsHead``'s arguments (``num_classes``,
            ``in_channels``, ``loss`` for the soft labels, ...).
    """

    def __init__(self,
                 hard_label_loss: Dict = dict(
                     type='CrossEntropyLoss', loss_weight=0.1),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if self.cal_acc:
            raise ValueError('SoftAndHardLabelClsHead: cal_acc needs hard '
                             'targets; the soft term has none.')
        self.hard_label_loss = MODELS.build(hard_label_loss)

    def _get_loss(self, cls_score: Tensor, data_samples: List[DataSample],
                  **kwargs) -> Dict[str, Tensor]:
        """The soft-label loss and the hard-label loss.

        Args:
            cls_score (Tensor): Logits (B, C).
            data_samples (list[DataSample]): Samples with ``gt_score`` and
                ``gt_label``.
            **kwargs: Passed to both losses.

        Returns:
            dict[str, Tensor]: ``loss`` (soft) and ``loss_hard``.
        """
        if not all('gt_score' in sample and 'gt_label' in sample
                   for sample in data_samples):
            raise ValueError(
                'SoftAndHardLabelClsHead needs a soft label (gt_score, e.g. '
                'from FKDReplayCrop) and a class (gt_label) in every '
                'training sample; for hard labels alone use LinearClsHead.')
        losses = super()._get_loss(cls_score, data_samples, **kwargs)
        classes = torch.cat([sample.gt_label for sample in data_samples])
        losses['loss_hard'] = self.hard_label_loss(
            cls_score, classes, avg_factor=cls_score.size(0), **kwargs)
        return losses
