# Copyright (c) mmkd_plugin contributors.
"""Scale Decoupled Distillation (SDD).

Wei et al., "Scale Decoupled Distillation", CVPR 2024.
https://arxiv.org/abs/2403.13512 (authors' code: shicaiwei123/SDD-CVPR2024)

The per-region losses are Hinton et al.'s KD (https://arxiv.org/abs/1503.02531)
or Zhao et al.'s DKD (CVPR 2022, https://arxiv.org/abs/2203.08679).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import get_submodule_or_raise, warmup_factor
from .dkd_loss import DKDLoss
from .kd_loss import KDLoss

SUPPORTED_SCALES = (1, 2, 4)
PER_ROW_LOSSES = ('kd', 'dkd')
# Weights of the consistent and complementary rows (the authors' values).
CONSISTENT_WEIGHT = 1.0
COMPLEMENTARY_WEIGHT = 2.0


def multi_scale_regions(feat: Tensor, scales: Sequence[int]) -> Tensor:
    """Average-pooled region features of a feature map, region-major.

    ``P4 = adaptive_avg_pool(feat, 4 x 4)``; ``P2`` (2 x 2) and ``P1``
    (1 x 1) are pooled from ``P4``, as in the authors' code (for maps whose
    size is not a multiple of 4, P1 is thus the mean of the 16 adaptive
    bins, not exactly the global average). Regions are ordered
    ``[P1, P2 cells, P4 cells]`` (cells row-major), keeping the requested
    scales only.

    Args:
        feat (Tensor): Feature map (B, C, H, W).
        scales (Sequence[int]): Sorted subset of (1, 2, 4) containing 1.

    Returns:
        Tensor: Region features (N * B, C), the first B rows the global
        region (row ``r * B + b`` is region r of sample b).
    """
    pooled_4x4 = F.adaptive_avg_pool2d(feat, 4)
    by_scale = {
        1: pooled_4x4.mean(dim=(2, 3), keepdim=True),
        2: F.avg_pool2d(pooled_4x4, 2),
        4: pooled_4x4,
    }
    regions = torch.cat([by_scale[scale].flatten(2) for scale in scales],
                        dim=2)
    return regions.permute(2, 0, 1).flatten(0, 1)


def region_weights(teacher_row_logits: Tensor, labels: Tensor,
                   num_regions: int) -> Tensor:
    """Consistent (1) / complementary (2) weights of the region rows.

    A row is complementary when the teacher's argmax on that region is
    right and on the whole image (the global row of the same sample)
    wrong, or the other way round; otherwise consistent. Global rows are
    consistent by construction.

    Args:
        teacher_row_logits (Tensor): Teacher logits (N * B, K), region-major
            with the global region first.
        labels (Tensor): Target classes (B, ).
        num_regions (int): N.

    Returns:
        Tensor: Weights (N * B, ) in the logits' dtype.
    """
    region_correct = (teacher_row_logits.argmax(dim=1) ==
                      labels.repeat(num_regions)).view(num_regions,
                                                       labels.shape[0])
    complementary = region_correct != region_correct[:1]
    return torch.where(complementary, COMPLEMENTARY_WEIGHT,
                       CONSISTENT_WEIGHT).to(teacher_row_logits.dtype).flatten()


@MODELS.register_module()
class SDDLoss(nn.Module):
    """Scale Decoupled Distillation on the last feature maps (Wei et al.,
    CVPR 2024).

    Both feature maps are pooled into N regions (:func:`multi_scale_regions`:
    1 global, 4 of a 2 x 2 grid, 16 of a 4 x 4 grid as ``scales`` asks);
    every region goes through its own model's final classifier, giving
    (N * B, K) logits per model. Per row a KD or DKD loss (T^2 included)
    is weighted by :func:`region_weights` (1 consistent, 2 complementary)
    and the sum divided by N * B::

        loss = loss_weight * min(epoch / warmup_epochs, 1)
               * sum_rows w_row * loss_row / (N * B)

    ``scales=(1, )`` is plain KD / DKD on the pooled logits. The student's
    classifier receives gradients from this loss (as in the authors' code);
    the teacher's classifier runs under ``no_grad``. Unlike the authors'
    code, a NaN loss is not silently set to 0.

    The classifiers are found by :meth:`link_models` (called by the
    distillation wrapper with the whole student and teacher) and are held
    in a tuple, not as submodules: they appear neither in this loss's
    state dict nor among its parameters.

    Args:
        scales (Sequence[int]): Pooling grids, a subset of (1, 2, 4) with 1.
            Defaults to (1, 2).
        loss (str): Per-row loss, ``'kd'`` (SD-KD) or ``'dkd'`` (SD-DKD).
            Defaults to ``'kd'``.
        temperature (float): Softmax temperature T. Defaults to 4.
        alpha (float): DKD's TCKD weight. Defaults to 1.
        beta (float): DKD's NCKD weight. Defaults to 8.
        loss_weight (float): Overall weight. Defaults to 1.
        warmup_epochs (float): Linear warm-up of the loss over this many
            epochs (the authors warm up SD-DKD: 20 on CIFAR, 1 on
            ImageNet); 0 for none. Defaults to 0.
        student_classifier (str): Module path of the student's final
            classifier. Defaults to ``'head.fc'``.
        teacher_classifier (str): Module path of the teacher's final
            classifier. Defaults to ``'head.fc'``.
        logit_standardization (bool): Z-score every row's logits before the
            division by T (Sun et al., CVPR 2024). Defaults to False.
    """

    # Each side's map goes through its own classifier: widths and sizes may
    # differ between student and teacher.
    allows_channel_mismatch = True
    allows_spatial_mismatch = True

    def __init__(self,
                 scales: Sequence[int] = (1, 2),
                 loss: str = 'kd',
                 temperature: float = 4.0,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 loss_weight: float = 1.0,
                 warmup_epochs: float = 0.0,
                 student_classifier: str = 'head.fc',
                 teacher_classifier: str = 'head.fc',
                 logit_standardization: bool = False) -> None:
        super().__init__()
        self.scales = self._checked_scales(scales)
        self.num_regions = sum(scale * scale for scale in self.scales)
        if temperature <= 0:
            raise ValueError(
                f'SDDLoss: temperature must be positive, got {temperature}.')
        if warmup_epochs < 0:
            raise ValueError('SDDLoss: warmup_epochs must be >= 0, got '
                             f'{warmup_epochs}.')
        if loss == 'kd':
            self.row_loss = KDLoss(temperature, 1.0, logit_standardization)
        elif loss == 'dkd':
            self.row_loss = DKDLoss(alpha, beta, temperature, 1.0,
                                    logit_standardization)
        else:
            raise ValueError(f'SDDLoss: loss must be one of {PER_ROW_LOSSES}'
                             f', got {loss!r}.')
        self.loss = loss
        self.loss_weight = loss_weight
        self.warmup_epochs = warmup_epochs
        self.student_classifier = student_classifier
        self.teacher_classifier = teacher_classifier
        # (student fc, teacher fc); a tuple so they are not submodules.
        self._classifiers: Optional[Tuple[nn.Module, nn.Module]] = None

    @staticmethod
    def _checked_scales(scales: Sequence[int]) -> Tuple[int, ...]:
        scale_list = list(scales)
        if (1 not in scale_list or len(set(scale_list)) != len(scale_list)
                or not set(scale_list) <= set(SUPPORTED_SCALES)):
            raise ValueError(
                'SDDLoss: scales must be distinct values from '
                f'{SUPPORTED_SCALES} including 1, got {tuple(scales)}.')
        return tuple(sorted(int(scale) for scale in scale_list))

    def link_models(self, student: nn.Module, teacher: nn.Module) -> None:
        """Find the two final classifiers (called once at build time).

        Args:
            student (nn.Module): The whole student model.
            teacher (nn.Module): The whole teacher model.
        """
        student_fc = self._find_classifier(student, self.student_classifier,
                                           'student')
        teacher_fc = self._find_classifier(teacher, self.teacher_classifier,
                                           'teacher')
        student_classes = getattr(student_fc, 'out_features', None)
        teacher_classes = getattr(teacher_fc, 'out_features', None)
        if None not in (student_classes, teacher_classes) and \
                student_classes != teacher_classes:
            raise ValueError(
                f'SDDLoss: the student classifier "{self.student_classifier}"'
                f' has {student_classes} classes, the teacher classifier '
                f'"{self.teacher_classifier}" {teacher_classes}.')
        self._classifiers = (student_fc, teacher_fc)

    @staticmethod
    def _find_classifier(model: nn.Module, path: str, owner: str) -> nn.Module:
        try:
            return get_submodule_or_raise(model, path, owner)
        except ValueError as error:
            raise ValueError(f'SDDLoss (classifier "{path}"): {error}') \
                from None

    def forward(self, student_feat: Tensor, teacher_feat: Tensor,
                labels: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            student_feat (Tensor): Student's last feature map (B, C_s, H, W).
            teacher_feat (Tensor): Teacher's last feature map
                (B, C_t, H', W').
            labels (Tensor): Target classes (B, ).

        Returns:
            Tensor: Scalar loss.
        """
        if self._classifiers is None:
            raise RuntimeError('SDDLoss: link_models(student, teacher) must '
                               'be called before the loss is used.')
        self._check_inputs(student_feat, teacher_feat, labels)
        student_fc, teacher_fc = self._classifiers
        student_logits = student_fc(
            multi_scale_regions(student_feat, self.scales))
        with torch.no_grad():
            teacher_logits = teacher_fc(
                multi_scale_regions(teacher_feat.detach(), self.scales))
        weights = region_weights(teacher_logits, labels, self.num_regions)
        num_rows = student_logits.shape[0]
        if self.loss == 'kd':
            loss = self.row_loss(student_logits, teacher_logits,
                                 weight=weights, avg_factor=num_rows)
        else:
            loss = self.row_loss(student_logits, teacher_logits,
                                 labels.repeat(self.num_regions),
                                 avg_factor=num_rows, weight=weights)
        warmup = warmup_factor(self.warmup_epochs, 'SDDLoss')
        return self.loss_weight * warmup * loss

    def _check_inputs(self, student_feat: Tensor, teacher_feat: Tensor,
                      labels: Tensor) -> None:
        if student_feat.dim() != 4 or teacher_feat.dim() != 4 or \
                student_feat.shape[0] != teacher_feat.shape[0]:
            raise ValueError(
                'SDDLoss expects student and teacher feature maps (B, C, H, '
                f'W) of one batch, got {tuple(student_feat.shape)} and '
                f'{tuple(teacher_feat.shape)}.')
        if labels.shape != (student_feat.shape[0], ):
            raise ValueError(
                f'SDDLoss: labels must have shape ({student_feat.shape[0]}, '
                f'), got {tuple(labels.shape)}.')
        for owner, feat, fc, path in (
                ('student', student_feat, self._classifiers[0],
                 self.student_classifier),
                ('teacher', teacher_feat, self._classifiers[1],
                 self.teacher_classifier)):
            in_features = getattr(fc, 'in_features', None)
            if in_features is not None and in_features != feat.shape[1]:
                raise ValueError(
                    f'SDDLoss: the {owner} classifier "{path}" takes '
                    f'{in_features} features but the {owner} feature map '
                    f'has {feat.shape[1]} channels.')
