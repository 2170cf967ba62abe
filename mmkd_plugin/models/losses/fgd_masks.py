# Copyright (c) mmkd_plugin contributors.
"""Foreground and background masks of Focal and Global Distillation (FGD).

Yang et al., "Focal and Global Knowledge Distillation for Detectors",
CVPR 2022. https://arxiv.org/abs/2111.11837
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

MaskPair = Tuple[Tensor, Tensor]


def fgd_masks(boxes_list: Sequence[Tensor], batch_input_shape: Sequence[int],
              feat_hws: Sequence[Sequence[int]]) -> List[MaskPair]:
    """Build FGD's foreground and background masks for feature levels.

    Boxes are mapped onto each (H, W) feature grid by scaling with
    ``W / W_pad`` and ``H / H_pad`` where (H_pad, W_pad) is the padded batch
    shape. The authors' reference scales with ``img_shape`` (the un-padded
    image) instead, which stretches the boxes of every image smaller than
    the padded batch; both agree whenever an image was not padded.

    On the grid, x1 / y1 are floored and x2 / y2 ceiled, and the box covers
    the inclusive cell range [y1, y2] x [x1, x2], clipped to the grid.
    Each covered cell gets 1 / ((y2 - y1 + 1) * (x2 - x1 + 1)) with the
    un-clipped bounds, as in the reference; where boxes overlap the larger
    value (the smaller box) wins. Boxes inverted on an axis (x2 < x1 on the
    grid) or with a NaN coordinate cover no cell. The background mask is 1
    where the foreground is 0, divided by the number of such cells of the
    image (left as zeros when there are none).

    All images and boxes are handled at once by tensor ops, with no Python
    loop over boxes and no host synchronisation; the memory peak is one
    (N, K, H, W) tensor with K the most boxes of any image.

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
