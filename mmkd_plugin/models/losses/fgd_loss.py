# Copyright (c) mmkd_plugin contributors.
"""Focal and Global Distillation (FGD).

Yang et al., "Focal and Global Knowledge Distillation for Detectors",
CVPR 2022. https://arxiv.org/abs/2111.11837

The foreground / background masks are built for the whole batch and all
boxes at once with a fixed number of tensor ops (no Python loop over boxes,
no host synchronisation), for one level (:func:`fgd_masks`) or several at
once (:func:`fgd_masks_multi`). The feature loss folds masks, attentions and
the squared
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
from .precision import full_precision
from .shape_check import check_feature_pair

MaskPair = Tuple[Tensor, Tensor]


def _pad_boxes(boxes_list: Sequence[Tensor]) -> Tensor:
    """Stack per-image boxes into one floating tensor, NaN-padded if ragged.

    NaN marks the padding: a box with a NaN coordinate covers no cell (see
    :func:`_cell_values`). When every image has the same (k, 4) boxes (a
    check on Python shapes, not on values) a single ``torch.stack``
    replaces the padding.

    Args:
        boxes_list (Sequence[Tensor]): One (k_i, 4) xyxy tensor per image.

    Returns:
        Tensor: Boxes (N, K, 4) with K = max k_i, NaN rows as padding.
    """
    shapes = {tuple(b.shape) for b in boxes_list}
    if len(shapes) == 1 and len(next(iter(shapes))) == 2:
        boxes = torch.stack(list(boxes_list))
    else:
        boxes = [b.reshape(-1, 4) for b in boxes_list]
        boxes = [b if b.is_floating_point() else b.float() for b in boxes]
        boxes = pad_sequence(
            boxes, batch_first=True, padding_value=float('nan'))
    return boxes if boxes.is_floating_point() else boxes.float()


def _grid_bounds(boxes: Tensor, batch_input_shape: Sequence[int],
                 feat_hws: Sequence[Tuple[int, int]]
                 ) -> Tuple[Tensor, Tensor, Tensor]:
    """Map boxes onto the grids of one or more feature levels at once.

    Args:
        boxes (Tensor): (N, K, 4) xyxy boxes in the padded batch frame.
        batch_input_shape (Sequence[int]): (H_pad, W_pad) of the batch.
        feat_hws (Sequence[tuple[int, int]]): (H, W) of each of L levels.

    Returns:
        tuple[Tensor, Tensor, Tensor]: Floored low and ceiled high cell
        index (inclusive), each (N, K, L, 2, 1) with the axes ordered
        (x, y), and each box's value ``1 / ((y2 - y1 + 1) * (x2 - x1 + 1))``
        from the un-clipped bounds, (N, K, L, 1, 1). NaN for padding boxes.
    """
    pad_h, pad_w = batch_input_shape
    num_images, num_boxes = boxes.shape[:2]
    # Divide, then multiply, by Python scalars: the reference's order and
    # kernels (CUDA divides by a CPU scalar through its reciprocal), so
    # floor / ceil agree with it bit for bit on every device. A tensor of
    # the sizes would need a host-to-device copy, which synchronises.
    x = boxes[..., 0::2] / pad_w  # (N, K, 2): x1, x2
    y = boxes[..., 1::2] / pad_h
    scaled = torch.stack(
        [coord for h, w in feat_hws for coord in (x * w, y * h)], dim=-2)
    low, high = scaled.view(num_images, num_boxes, len(feat_hws), 2, 2,
                            1).unbind(-2)
    low, high = low.floor_(), high.ceil_()
    # Clamping only touches inverted boxes (which cover no cell): it keeps
    # every value >= 0 (or inf / NaN), never negative.
    extent = (high - low).add_(1).clamp_(min=0)
    return low, high, extent.prod(dim=-2, keepdim=True).reciprocal_()


def _cell_values(low: Tensor, high: Tensor, value: Tensor,
                 size: int) -> Tensor:
    """Per-box value on the cells of each axis that the box covers.

    Coverage is computed with float arithmetic instead of boolean masks
    (several times faster on CPU): with integer bounds the signed distance
    ``min(index - low, high - index)`` is >= 0 inside the box and <= -1
    outside, so ``clamp(distance + 1, 0, 1)`` is exactly 1 or 0.

    Args:
        low (Tensor): (..., 1) first covered index (may lie off the grid).
        high (Tensor): (..., 1) last covered index, inclusive.
        value (Tensor): Value of each box, >= 0, inf or NaN; broadcastable
            to ``low``.
        size (int): Number of cells to evaluate on each axis.

    Returns:
        Tensor: (..., size), ``value`` where low <= index <= high, else 0:
        finite, >= 0 and never -0.0. Boxes with NaN bounds (padding) give 0
        everywhere. An infinite value belongs to a box with a zero extent
        on one axis: that axis gives 0 (inf * 0 is NaN, zeroed), so the
        large finite code ``nan_to_num`` leaves on the other axis never
        reaches a cell.
    """
    index = torch.arange(size, device=low.device, dtype=low.dtype)
    distance = torch.minimum(index - low, high - index)
    inside = distance.add_(1).clamp_(min=0, max=1)
    return inside.mul_(value).nan_to_num_(nan=0.0)


def _background(fg: Tensor) -> Tensor:
    """1 where ``fg`` is 0, divided by the count of such cells per image.

    Left as zeros for an image without background cells.

    Args:
        fg (Tensor): Foreground mask (N, H, W).

    Returns:
        Tensor: Background mask (N, H, W) in the dtype of ``fg``.
    """
    # Write the comparison straight into a floating tensor: a bool result
    # would cost a second, conversion pass over the mask.
    background = torch.eq(fg, 0, out=torch.empty_like(fg))
    count = background.sum(dim=(1, 2), keepdim=True)
    return background.div_(count.clamp_(min=1))


def fgd_masks_multi(boxes_list: Sequence[Tensor],
                    batch_input_shape: Sequence[int],
                    feat_hws: Sequence[Sequence[int]]) -> List[MaskPair]:
    """Build :func:`fgd_masks` for several feature levels at once.

    The boxes are stacked once and mapped onto all L grids together, and
    the coverage of every level's rows and columns is evaluated by one set
    of element-wise ops on max(H, W) cells per axis. Only the (N, K, H, W)
    min / max step and the background normalisation run once per level, so
    building all levels of a batch here takes about 60 tensor ops instead
    of about 35 per level for L calls of :func:`fgd_masks`, with identical
    results (:func:`fgd_masks` is this function with one level). A caller
    that knows every level's shape, e.g. a detector distilling all FPN
    levels of a batch, can build them here and hand each level's pair to
    ``FGDLoss`` as ``masks``.

    Args:
        boxes_list (Sequence[Tensor]): Per-image gt boxes, (k_i, 4) xyxy in
            the pixel frame of the padded batch input; k_i may be 0.
        batch_input_shape (Sequence[int]): (H_pad, W_pad) of the batch.
        feat_hws (Sequence[Sequence[int]]): (H, W) of each feature level.

    Returns:
        list[tuple[Tensor, Tensor]]: Per level, the foreground and
        background masks, each (N, H, W), in the boxes' floating dtype
        (float32 for integer boxes).
    """
    feat_hws = [(int(h), int(w)) for h, w in feat_hws]
    if not feat_hws:
        return []
    boxes = _pad_boxes(boxes_list)
    num_images, num_boxes = boxes.shape[:2]
    if num_boxes == 0:
        empty = [boxes.new_zeros(num_images, h, w) for h, w in feat_hws]
        return [(fg, _background(fg)) for fg in empty]
    low, high, value = _grid_bounds(boxes, batch_input_shape, feat_hws)
    num_cells = max(max(hw) for hw in feat_hws)
    codes = _cell_values(low, high, value, num_cells)  # (N, K, L, 2, cells)
    # The codes are non-negative and NaN-free, so they order like their bit
    # patterns read as integers; float32 min / max then run as int32, which
    # skips the float kernels' NaN handling (about 25% faster on CPU) and
    # gives the float result bit for bit.
    keys = codes.view(torch.int32) if codes.dtype == torch.float32 else codes
    masks = []
    for level, (height, width) in enumerate(feat_hws):
        row_value = keys[:, :, level, 1, :height, None]  # (N, K, H, 1)
        col_value = keys[:, :, level, 0, None, :width]  # (N, K, 1, W)
        # A cell holds the box's value iff both its row and its column
        # are covered: min(row, col) is that value or 0. Max over boxes.
        fg = torch.minimum(row_value, col_value).amax(dim=1)
        fg = fg.view(codes.dtype)
        masks.append((fg, _background(fg)))
    return masks


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
    larger value (the smaller box) wins. Boxes with a NaN coordinate or
    inverted on an axis (x2 < x1 on the grid) cover no cell. The background
    mask is 1 where the foreground is 0, divided by the number of such
    cells of the image (left as is when there are none).

    Everything is batched over images and boxes with a fixed number of
    tensor ops (about 35, independent of the box count) and no host
    synchronisation; the memory peak is one (N, K, H, W) tensor with K the
    most boxes of any image. To build several levels of the same batch,
    :func:`fgd_masks_multi` shares all but the last step.

    Args:
        boxes_list (Sequence[Tensor]): Per-image gt boxes, (k_i, 4) xyxy in
            the pixel frame of the padded batch input; k_i may be 0.
        batch_input_shape (Sequence[int]): (H_pad, W_pad) of the batch.
        feat_hw (Sequence[int]): (H, W) of the feature level.

    Returns:
        tuple[Tensor, Tensor]: Foreground and background masks, each
        (N, H, W), in the boxes' floating dtype (float32 for integer boxes).
    """
    return fgd_masks_multi(boxes_list, batch_input_shape, [feat_hw])[0]


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
    return fgd_masks(*_boxes_and_batch_shape(data_samples), feat_hw)


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
    def shared_level_inputs(data_samples: Sequence,
                            feat_hws: Sequence[Sequence[int]]) -> List[dict]:
        """Masks of all levels of a batch, built once (``fgd_masks_multi``).

        ``DistillationDetector`` calls this once per distill term with the
        (H, W) of each of its levels and passes each dict to that level's
        ``forward``, so the boxes are stacked and mapped once per batch.

        Args:
            data_samples (Sequence[DetDataSample]): The batch's samples.
            feat_hws (Sequence[Sequence[int]]): (H, W) of each level.

        Returns:
            list[dict]: ``dict(masks=(fg, bg))`` per level.
        """
        masks = fgd_masks_multi(*_boxes_and_batch_shape(data_samples),
                                feat_hws)
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
                ``fgd_masks`` (fg, bg) for this level, e.g. from a cache.

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
