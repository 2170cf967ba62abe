# Copyright (c) mmkd_plugin contributors.
"""Focal and Global Distillation (FGD).

Yang et al., "Focal and Global Knowledge Distillation for Detectors",
CVPR 2022. https://arxiv.org/abs/2111.11837

The foreground / background masks come from :func:`fgd_masks`. The
feature loss folds masks, attentions and the squared difference into a
single reduction, and the global loss reuses it instead of materialising
the context blocks' full-size outputs.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ContextBlock
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor

from .channel_align import build_channel_align
from .fgd_masks import MaskPair, fgd_masks
from .precision import full_precision
from .shape_check import check_feature_pair


def _boxes_and_batch_shape(
        data_samples: Sequence) -> Tuple[List[Tensor], Tuple[int, int]]:
    """Per-image gt box tensors and the batch's shared padded shape."""
    shapes = {tuple(ds.metainfo['batch_input_shape']) for ds in data_samples}
    if len(shapes) != 1:
        raise ValueError('FGDLoss: all data samples of a batch must share '
                         f'batch_input_shape, got {sorted(shapes)}.')
    boxes_list = [
        get_box_tensor(ds.gt_instances.bboxes) for ds in data_samples
    ]
    return boxes_list, shapes.pop()


def fgd_attention(feat: Tensor, temp: float) -> Tuple[Tensor, Tensor]:
    """Spatial and channel attention of a feature map.

    Args:
        feat (Tensor): Feature (N, C, H, W).
        temp (float): Softmax temperature.

    Returns:
        tuple[Tensor, Tensor]: Spatial attention (N, H, W),
        ``H*W * softmax_hw(mean_c |F| / temp)``, and channel attention
        (N, C), ``C * softmax_c(mean_hw |F| / temp)``.
    """
    num_images, channels, height, width = feat.shape
    value = feat.abs()
    spatial = F.softmax(value.mean(dim=1).flatten(1) / temp, dim=1)
    spatial = (height * width * spatial).view(num_images, height, width)
    channel = channels * F.softmax(value.mean(dim=(2, 3)) / temp, dim=1)
    return spatial, channel


def _context_add(block: ContextBlock, feat: Tensor) -> Tensor:
    """Return the (N, C, 1, 1) term a channel-add context block adds.

    ``block(feat) == feat + _context_add(block, feat)``; computing only the
    added term avoids materialising the block's full-size output.
    """
    return block.channel_add_conv(block.spatial_pool(feat))


@MODELS.register_module()
class FGDLoss(nn.Module):
    """Focal and global distillation loss for one FPN level.

    With teacher attentions A_S^T (N, H, W), A_C^T (N, C) and masks from
    :func:`fgd_masks`, the loss is

        alpha * sum M_fg A_S^T A_C^T (S - T)^2 / N
        + beta * sum M_bg A_S^T A_C^T (S - T)^2 / N
        + gamma * (sum |A_C^S - A_C^T| + sum |A_S^S - A_S^T|) / N
        + lambda * sum (GC_s(S) - GC_t(T))^2 / N

    where GC_s / GC_t are two separate trainable GCNet context blocks. The
    teacher feature is detached; the teacher-side block still learns
    through the global term. The two masked terms are computed in a single
    weighted reduction. All arithmetic runs in float32 (float64 inputs stay
    float64) with autocast disabled, so the loss is finite under mixed
    precision.

    Boxes are mapped with the padded ``batch_input_shape`` rather than the
    reference's ``img_shape``; see :func:`fgd_masks`. Without ``masks``
    the call builds this level's masks from ``data_samples``;
    ``DistillationDetector`` builds all levels' at once with
    :meth:`shared_level_inputs` and passes each level its ``masks``.

    Args:
        student_channels (int): Channels of the student feature. A 1x1
            align conv is added when they differ from ``teacher_channels``.
        teacher_channels (int): Channels of the teacher feature.
        temp (float): Attention temperature. Defaults to 0.5.
        alpha_fgd (float): Foreground weight. Defaults to 1e-3.
        beta_fgd (float): Background weight. Defaults to 5e-4.
        gamma_fgd (float): Attention-loss weight. Defaults to 5e-4.
        lambda_fgd (float): Global-loss weight. Defaults to 5e-6.
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 temp: float = 0.5,
                 alpha_fgd: float = 1e-3,
                 beta_fgd: float = 5e-4,
                 gamma_fgd: float = 5e-4,
                 lambda_fgd: float = 5e-6) -> None:
        super().__init__()
        if temp <= 0:
            raise ValueError(f'FGDLoss: temp must be positive, got {temp}.')
        self.temp = temp
        self.alpha_fgd = alpha_fgd
        self.beta_fgd = beta_fgd
        self.gamma_fgd = gamma_fgd
        self.lambda_fgd = lambda_fgd
        self.align = build_channel_align(student_channels, teacher_channels)
        self.gc_student = self._build_context_block(teacher_channels)
        self.gc_teacher = self._build_context_block(teacher_channels)

    @staticmethod
    def shared_level_inputs(data_samples: Sequence,
                            feat_hws: Sequence[Sequence[int]]) -> List[dict]:
        """Masks of all levels of a batch, built once (:func:`fgd_masks`).

        ``DistillationDetector`` calls this once per distill term with the
        (H, W) of each of its levels and passes each dict to that level's
        ``forward``, so the boxes are stacked once per batch.

        Args:
            data_samples (Sequence[DetDataSample]): The batch's samples.
            feat_hws (Sequence[Sequence[int]]): (H, W) of each level.

        Returns:
            list[dict]: ``dict(masks=(fg, bg))`` per level.
        """
        masks = fgd_masks(*_boxes_and_batch_shape(data_samples), feat_hws)
        return [dict(masks=pair) for pair in masks]

    @staticmethod
    def _build_context_block(channels: int) -> ContextBlock:
        """GCNet block: attention pooling, C -> C/2 -> C channel add."""
        return ContextBlock(
            channels, ratio=0.5, fusion_types=('channel_add', ))

    def forward(self,
                student_feat: Tensor,
                teacher_feat: Tensor,
                data_samples: Optional[List] = None,
                masks: Optional[MaskPair] = None) -> Tensor:
        """Compute the loss for one feature level.

        Args:
            student_feat (Tensor): Student feature (N, C_s, H, W).
            teacher_feat (Tensor): Teacher feature (N, C_t, H, W); detached.
            data_samples (list[DetDataSample], optional): Samples with gt
                boxes and ``batch_input_shape``. Needed unless ``masks`` is
                given.
            masks (tuple[Tensor, Tensor], optional): Precomputed
                :func:`fgd_masks` (fg, bg) for this level, e.g. from
                :meth:`shared_level_inputs`.

        Returns:
            Tensor: Scalar loss.
        """
        with full_precision(student_feat) as dtype:
            student = self.align(student_feat.to(dtype))
            teacher = teacher_feat.detach().to(dtype)
            check_feature_pair('FGDLoss', student, teacher)
            fg, bg = self._get_masks(student, data_samples, masks)
            s_att_s, c_att_s = fgd_attention(student, self.temp)
            s_att_t, c_att_t = fgd_attention(teacher, self.temp)
            diff = (student - teacher).flatten(2)  # (N, C, HW)
            weighted_sq, total_sq = self._square_sums(diff, fg.to(dtype),
                                                      bg.to(dtype), s_att_t)
            loss = (self._feature_loss(weighted_sq, c_att_t) +
                    self.gamma_fgd * self._attention_loss(
                        s_att_s, c_att_s, s_att_t, c_att_t) +
                    self.lambda_fgd * self._global_loss(
                        student, teacher, diff, total_sq))
        return loss

    def _get_masks(self, student: Tensor, data_samples: Optional[List],
                   masks: Optional[MaskPair]) -> MaskPair:
        """Return (fg, bg) for the feature, building them if not given."""
        num_images = student.shape[0]
        expected = (num_images, *student.shape[2:])
        if masks is None:
            if data_samples is None or len(data_samples) != num_images:
                got = None if data_samples is None else len(data_samples)
                raise ValueError(
                    f'FGDLoss needs one data sample per image: {num_images} '
                    f'images in student feature {tuple(student.shape)}, got '
                    f'{got} data samples.')
            masks = fgd_masks(*_boxes_and_batch_shape(data_samples),
                              [expected[1:]])[0]
        fg, bg = masks
        if tuple(fg.shape) != expected or tuple(bg.shape) != expected:
            raise ValueError(
                f'FGDLoss: masks must be {expected} for student feature '
                f'{tuple(student.shape)}, got {tuple(fg.shape)} and '
                f'{tuple(bg.shape)}.')
        return fg, bg

    def _square_sums(self, diff: Tensor, fg: Tensor, bg: Tensor,
                     s_att_t: Tensor) -> Tuple[Tensor, Tensor]:
        """Weighted per-channel sums of diff^2 and their plain total.

        The fg / bg masks and the teacher's spatial attention fold into one
        (N, HW) weight, applied by a single (N, C, HW) @ (N, HW, 1) product,
        so no full-size weighted copy of either feature is materialised.

        Args:
            diff (Tensor): S - T flattened to (N, C, HW).
            fg (Tensor): Foreground mask (N, H, W).
            bg (Tensor): Background mask (N, H, W).
            s_att_t (Tensor): Teacher spatial attention (N, H, W).

        Returns:
            tuple[Tensor, Tensor]: (N, C) sums over HW of
            ``(alpha*fg + beta*bg) * A_S^T * diff^2``, and the scalar sum of
            ``diff^2``.
        """
        spatial_weight = (self.alpha_fgd * fg + self.beta_fgd * bg) * s_att_t
        sq_diff = diff.square()
        weighted = torch.bmm(sq_diff, spatial_weight.flatten(1).unsqueeze(-1))
        return weighted.squeeze(-1), sq_diff.sum()

    @staticmethod
    def _feature_loss(weighted_sq: Tensor, c_att_t: Tensor) -> Tensor:
        """alpha * fg-loss + beta * bg-loss from the weighted sums."""
        return (weighted_sq * c_att_t).sum() / weighted_sq.shape[0]

    @staticmethod
    def _attention_loss(s_att_s: Tensor, c_att_s: Tensor, s_att_t: Tensor,
                        c_att_t: Tensor) -> Tensor:
        """L1 distance of channel and spatial attentions, per image."""
        num_images = s_att_s.shape[0]
        return ((c_att_s - c_att_t).abs().sum() +
                (s_att_s - s_att_t).abs().sum()) / num_images

    def _global_loss(self, student: Tensor, teacher: Tensor, diff: Tensor,
                     total_sq: Tensor) -> Tensor:
        """sum (GC_s(S) - GC_t(T))^2 / N without the full-size outputs.

        GC_s(S) - GC_t(T) = diff + d with d the (N, C) difference of the
        blocks' channel-add terms, so
        sum (diff + d)^2 = sum diff^2 + sum_nc (2 d sum_hw diff + HW d^2).
        The identity is exact; in float32 it only loses relative precision
        where d cancels a per-channel offset of diff far larger than its
        spread, which is immaterial at lambda_fgd's scale.

        Args:
            student (Tensor): Aligned student feature (N, C, H, W).
            teacher (Tensor): Teacher feature (N, C, H, W), detached.
            diff (Tensor): S - T flattened to (N, C, HW).
            total_sq (Tensor): Scalar sum of diff^2.

        Returns:
            Tensor: Scalar global loss.
        """
        num_images, _, num_cells = diff.shape
        add_diff = (_context_add(self.gc_student, student) -
                    _context_add(self.gc_teacher, teacher)).flatten(1)
        cross = (2 * diff.sum(dim=-1) + num_cells * add_diff) * add_diff
        return (total_sq + cross.sum()) / num_images
