# Copyright (c) mmkd_plugin contributors.
"""Focal and Global Distillation (FGD).

Yang et al., "Focal and Global Knowledge Distillation for Detectors",
CVPR 2022. https://arxiv.org/abs/2111.11837

The foreground / background masks are built for the whole batch and all
boxes at once with tensor comparisons (no Python loop over boxes, no host
synchronisation). The feature loss folds masks, attentions and the squared
difference into a single reduction, and the global loss reuses it instead
of materialising the context blocks' full-size outputs.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ContextBlock
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from .channel_align import build_channel_align
from .shape_check import check_feature_pair

MaskPair = Tuple[Tensor, Tensor]


def _pad_boxes(boxes_list: Sequence[Tensor]) -> Tensor:
    """Stack per-image boxes into one NaN-padded floating tensor.

    NaN is the validity mask: every comparison with NaN is False, so a
    padding box covers no cell and never reaches the masks.

    Args:
        boxes_list (Sequence[Tensor]): One (k_i, 4) xyxy tensor per image.

    Returns:
        Tensor: Boxes (N, K, 4) with K = max k_i, NaN rows as padding.
    """
    boxes = [b.reshape(-1, 4) for b in boxes_list]
    boxes = [b if b.is_floating_point() else b.float() for b in boxes]
    return pad_sequence(boxes, batch_first=True, padding_value=float('nan'))


def _grid_bounds(coords: Tensor, pad: int,
                 size: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Map (low, high) pixel coordinates of one axis onto the grid.

    Args:
        coords (Tensor): (N, K, 2) pixel coordinates (x1, x2) or (y1, y2).
        pad (int): Padded batch size along this axis, in pixels.
        size (int): Feature cells along this axis.

    Returns:
        tuple[Tensor, Tensor, Tensor]: (N, K) floored low index, ceiled
        high index (inclusive) and extent ``high - low + 1``.
    """
    # Divide, then multiply: the reference's order, so floor / ceil agree
    # with it bit for bit.
    scaled = coords / pad * size
    low, high = scaled[..., 0].floor(), scaled[..., 1].ceil()
    return low, high, (high + 1).sub_(low)


def _cell_values(low: Tensor, high: Tensor, value: Tensor,
                 size: int) -> Tensor:
    """Per-box value on the cells of one axis that the box covers.

    Args:
        low (Tensor): (N, K) first covered index (may lie off the grid).
        high (Tensor): (N, K) last covered index, inclusive.
        value (Tensor): (N, K) value of each box.
        size (int): Number of cells on this axis.

    Returns:
        Tensor: (N, K, size), ``value`` where low <= index <= high, else 0
        (also 0 everywhere for NaN bounds).
    """
    index = torch.arange(size, device=low.device, dtype=low.dtype)
    inside = (index >= low.unsqueeze(-1)) & (index <= high.unsqueeze(-1))
    return torch.where(inside, value.unsqueeze(-1), 0.0)


def fgd_masks(boxes_list: Sequence[Tensor], batch_input_shape: Sequence[int],
              feat_hw: Sequence[int]) -> MaskPair:
    """Build FGD's foreground and background masks for one feature level.

    Boxes are mapped onto the (H, W) feature grid by scaling with
    ``W / W_pad`` and ``H / H_pad`` where (H_pad, W_pad) is the padded batch
    shape. The authors' reference scales with ``img_shape`` (the un-padded
    image) instead, which stretches the boxes of every image smaller than
    the padded batch; both agree whenever an image was not padded.

    On the grid, x1 / y1 are floored and x2 / y2 ceiled, and the box covers
    the inclusive cell range [y1, y2] x [x1, x2], clipped to the grid (a
    cell is inside when its index lies within the bounds, so boxes on or
    across the border, degenerate or outside boxes never index out of
    range). Each covered cell gets 1 / ((y2 - y1 + 1) * (x2 - x1 + 1)) with
    the un-clipped bounds, as in the reference; where boxes overlap the
    larger value (the smaller box) wins. The background mask is 1 where the
    foreground is 0, divided by the number of such cells of the image (left
    as is when there are none).

    Everything is batched over images and boxes with a fixed number of
    tensor ops and no host synchronisation; the memory peak is one
    (N, K, H, W) tensor with K the most boxes of any image.

    Args:
        boxes_list (Sequence[Tensor]): Per-image gt boxes, (k_i, 4) xyxy in
            the pixel frame of the padded batch input; k_i may be 0.
        batch_input_shape (Sequence[int]): (H_pad, W_pad) of the batch.
        feat_hw (Sequence[int]): (H, W) of the feature level.

    Returns:
        tuple[Tensor, Tensor]: Foreground and background masks, each
        (N, H, W), in the boxes' floating dtype (float32 for integer boxes).
    """
    height, width = int(feat_hw[0]), int(feat_hw[1])
    pad_h, pad_w = batch_input_shape
    boxes = _pad_boxes(boxes_list)
    num_images, num_boxes = boxes.shape[:2]
    if num_boxes == 0:
        fg = boxes.new_zeros(num_images, height, width)
    else:
        x1, x2, extent_x = _grid_bounds(boxes[..., 0::2], pad_w, width)
        y1, y2, extent_y = _grid_bounds(boxes[..., 1::2], pad_h, height)
        # Only boxes with extents >= 1 on both axes cover a cell, so the
        # value is finite and positive wherever it is used.
        value = (extent_y * extent_x).reciprocal()
        row_value = _cell_values(y1, y2, value, height)  # (N, K, H)
        col_value = _cell_values(x1, x2, value, width)  # (N, K, W)
        # A cell holds the box's value iff both its row and its column are
        # covered: min(row, col) is that value or 0. Max over the boxes.
        fg = torch.minimum(row_value.unsqueeze(-1),
                           col_value.unsqueeze(-2)).amax(dim=1)
    bg = (fg == 0).to(fg.dtype)
    bg = bg / bg.sum(dim=(1, 2), keepdim=True).clamp(min=1)
    return fg, bg


def fgd_masks_from_data_samples(data_samples: Sequence,
                                feat_hw: Sequence[int]) -> MaskPair:
    """Build :func:`fgd_masks` from mmdet ``DetDataSample`` objects.

    Args:
        data_samples (Sequence[DetDataSample]): Samples with
            ``gt_instances.bboxes`` (Tensor or ``HorizontalBoxes``) and the
            ``batch_input_shape`` meta field.
        feat_hw (Sequence[int]): (H, W) of the feature level.

    Returns:
        tuple[Tensor, Tensor]: Foreground and background masks (N, H, W).
    """
    shapes = {tuple(ds.metainfo['batch_input_shape']) for ds in data_samples}
    if len(shapes) != 1:
        raise ValueError('FGDLoss: all data samples of a batch must share '
                         f'batch_input_shape, got {sorted(shapes)}.')
    boxes_list = [
        get_box_tensor(ds.gt_instances.bboxes) for ds in data_samples
    ]
    return fgd_masks(boxes_list, shapes.pop(), feat_hw)


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


def _compute_dtype(feat: Tensor) -> torch.dtype:
    """Float32 for low-precision inputs, else the input's own dtype."""
    return torch.promote_types(feat.dtype, torch.float32)


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
    reference's ``img_shape``; see :func:`fgd_masks`. The masks are built
    once per call (one FPN level); a caller that already has them for this
    level, e.g. from a cache, passes them as ``masks``.

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
                ``fgd_masks`` (fg, bg) for this level, e.g. from a cache.

        Returns:
            Tensor: Scalar loss.
        """
        dtype = _compute_dtype(student_feat)
        with torch.autocast(student_feat.device.type, enabled=False):
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
            masks = fgd_masks_from_data_samples(data_samples, expected[1:])
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
