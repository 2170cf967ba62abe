# Copyright (c) mmkd_plugin contributors.
"""One flat layout for the per-level maps and targets of dense heads.

The distilling dense heads (LD, BCKD, CrossKD) compute their terms over
every location of every FPN level at once, on predictions and targets
flattened to one order: image-major, then level, row, column, prior. It is
the cheap order: an image's levels are joined in one op (a level's map
flattens without a copy), and mmdet's ``images_to_levels`` cuts each
level's targets out of one (N, sum_l A_l) tensor in this order.
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor


def flatten_levels(maps: Sequence[Tensor], channels: int) -> Tensor:
    """(N, A*K, H_l, W_l) per level -> (N * sum_l H_l*W_l*A, K).

    Args:
        maps (Sequence[Tensor]): One prediction map per level.
        channels (int): K, the channels of one prior.

    Returns:
        Tensor: Image-major, then level, row, column, prior.
    """
    joined = torch.cat([m.flatten(2) for m in maps], dim=2)
    return joined.transpose(1, 2).reshape(-1, channels)


def flat_targets(levels: Sequence[Tensor],
                 num_images: int,
                 item_shape: Tuple[int, ...] = ()) -> Tensor:
    """Per-level targets -> (N * sum_l A_l, *item_shape), in the order of
    :func:`flatten_levels`.

    Args:
        levels (Sequence[Tensor]): One tensor per level holding the targets
            of its A_l priors image by image: (N, A_l, *item_shape) or
            (N * A_l, *item_shape).
        num_images (int): N.
        item_shape (tuple[int]): Shape of one prior's target, e.g. (4, )
            for boxes. Defaults to () (one value).
    """
    joined = torch.cat(
        [level.reshape(num_images, -1, *item_shape) for level in levels],
        dim=1)
    return joined.reshape(-1, *item_shape)


def level_sizes(maps: Sequence[Tensor]) -> List[int]:
    """Locations per image on each level: H_l * W_l (one prior each)."""
    return [m.shape[-2] * m.shape[-1] for m in maps]


def per_level(values: Tensor, sizes: Sequence[int]) -> Tuple[Tensor, ...]:
    """Split flat values (N * sum_l A_l, ) into per-level (N, A_l) views."""
    return values.reshape(-1, sum(sizes)).split(list(sizes), dim=1)


def spread_levels(level_values: Sequence[Tensor], sizes: Sequence[int],
                  num_images: int) -> Tensor:
    """One value per level (0-d tensors) -> that value at each of the
    level's priors, (N * sum_l A_l, ) in the order of
    :func:`flatten_levels`."""
    return torch.cat([
        value.expand(num_images, size)
        for value, size in zip(level_values, sizes)
    ], dim=1).reshape(-1)
