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
    boxes = _stack_boxes(boxes_list)
    pad_h, pad_w = batch_input_shape
    # Divide by the padded size, then multiply by the grid size, both
    # Python scalars: the reference's order, so floor / ceil agree with it
    # exactly (a tensor of sizes would cost a synchronising copy on GPU).
    x1, y1, x2, y2 = boxes.unbind(-1)  # each (N, K)
    x1, x2, y1, y2 = x1 / pad_w, x2 / pad_w, y1 / pad_h, y2 / pad_h
    masks = []
    for height, width in feat_hws:
        height, width = int(height), int(width)
        fg = _foreground((x1 * width).floor(), (x2 * width).ceil(),
                         (y1 * height).floor(), (y2 * height).ceil(), height,
                         width)
        masks.append((fg, _background(fg)))
    return masks


def _stack_boxes(boxes_list: Sequence[Tensor]) -> Tensor:
    """Stack per-image boxes into one floating (N, K, 4) tensor.

    Images with fewer than K boxes are padded with NaN boxes, which cover
    no cell: every comparison with NaN is false.
    """
    boxes = [b.reshape(-1, 4) for b in boxes_list]
    boxes = [b if b.is_floating_point() else b.float() for b in boxes]
    return pad_sequence(boxes, batch_first=True, padding_value=float('nan'))


def _foreground(x1: Tensor, x2: Tensor, y1: Tensor, y2: Tensor, height: int,
                width: int) -> Tensor:
    """Foreground mask (N, H, W) from grid bounds (N, K), inclusive."""
    num_images, num_boxes = x1.shape
    if num_boxes == 0:  # max over no boxes: nothing is foreground
        return x1.new_zeros(num_images, height, width)
    rows = _covered(y1, y2, height)  # (N, K, H)
    cols = _covered(x1, x2, width)  # (N, K, W)
    # Boxes that cover no cell (inverted, off the grid, NaN) get value 0:
    # theirs could be negative, infinite or NaN.
    covers_cells = rows.any(dim=-1) & cols.any(dim=-1)
    value = torch.where(covers_cells, 1 / ((y2 - y1 + 1) * (x2 - x1 + 1)), 0)
    row_value = rows * value[..., None]  # (N, K, H)
    # A cell holds a box's value iff its row and its column are covered.
    return (row_value[..., :, None] * cols[..., None, :]).amax(dim=1)


def _covered(low: Tensor, high: Tensor, size: int) -> Tensor:
    """Whether each of ``size`` cells lies in [low, high], (..., size)."""
    index = torch.arange(size, device=low.device, dtype=low.dtype)
    return (index >= low[..., None]) & (index <= high[..., None])


def _background(fg: Tensor) -> Tensor:
    """1 where ``fg`` is 0, divided by the count of such cells per image."""
    background = (fg == 0).to(fg.dtype)
    count = background.sum(dim=(1, 2), keepdim=True)
    return background / count.clamp(min=1)
