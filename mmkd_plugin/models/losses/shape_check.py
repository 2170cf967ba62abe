# Copyright (c) mmkd_plugin contributors.
"""Input validation shared by the feature losses."""
from torch import Tensor


def check_feature_pair(loss_name: str, student_feat: Tensor,
                       teacher_feat: Tensor, same_channels: bool = True,
                       same_spatial: bool = True) -> None:
    """Raise a ValueError naming both shapes when a feature pair mismatches.

    Args:
        loss_name (str): Name of the calling loss, used in the message.
        student_feat (Tensor): Student feature of shape (N, C, H, W) (after
            any channel alignment).
        teacher_feat (Tensor): Teacher feature of shape (N, C, H, W).
        same_channels (bool): Require equal channel counts.
        same_spatial (bool): Require equal spatial sizes.
    """
    s_shape, t_shape = tuple(student_feat.shape), tuple(teacher_feat.shape)
    problem = None
    if student_feat.dim() != 4 or teacher_feat.dim() != 4:
        problem = 'expects 4-D (N, C, H, W) features'
    elif s_shape[0] != t_shape[0]:
        problem = 'needs the same batch size'
    elif same_channels and s_shape[1] != t_shape[1]:
        problem = 'needs equal channels (give student_channels and ' \
                  'teacher_channels to add a 1x1 align conv)'
    elif same_spatial and s_shape[2:] != t_shape[2:]:
        problem = 'needs equal spatial sizes'
    if problem is not None:
        raise ValueError(f'{loss_name} {problem}: student feature {s_shape}, '
                         f'teacher feature {t_shape}.')
