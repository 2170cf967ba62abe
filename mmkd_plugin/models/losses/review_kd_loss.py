# Copyright (c) mmkd_plugin contributors.
"""Knowledge Review (ReviewKD): attention-based fusion and the HCL loss.

Chen et al., "Distilling Knowledge via Knowledge Review", CVPR 2021.
https://arxiv.org/abs/2104.09044
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..utils.training_progress import warmup_factor
from .precision import full_precision

HCL_POOL_SIZES = (4, 2, 1)
MAX_MID_CHANNELS = 512


class AttentionBasedFusion(nn.Module):
    """The attention-based fusion (ABF) of one student stage.

    ``x = BN(conv1x1(student_feat))`` (C_s -> mid). Unless this is the
    deepest stage, the residual ``r`` handed up from the deeper stage is
    resized (nearest) to x's size and the two are blended with two
    attention maps, ``[a0, a1] = sigmoid(conv1x1([x, r]))``:
    ``x = x * a0 + r * a1``. If x's size differs from the teacher's, x is
    resized (nearest) to it. The stage output is ``BN(conv3x3(x))``
    (mid -> C_t) and x is the residual for the next shallower stage.

    The 1x1 and 3x3 convs have no bias and are initialised with
    ``kaiming_uniform_(a=1)``; the attention conv has a bias and PyTorch's
    default initialisation.

    Args:
        in_channels (int): Student channels of this stage.
        mid_channels (int): Channels of the fused (residual) features.
        out_channels (int): Teacher channels of this stage.
        fuse (bool): Blend in a residual from a deeper stage (False for the
            deepest stage only).
    """

    def __init__(self, in_channels: int, mid_channels: int,
                 out_channels: int, fuse: bool) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 1, bias=False),
            nn.BatchNorm2d(mid_channels))
        self.output = nn.Sequential(
            nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.attention = (nn.Conv2d(2 * mid_channels, 2, 1)
                          if fuse else None)
        nn.init.kaiming_uniform_(self.reduce[0].weight, a=1)
        nn.init.kaiming_uniform_(self.output[0].weight, a=1)

    def forward(self, student_feat: Tensor, residual: Optional[Tensor],
                out_size: Sequence[int]) -> Tuple[Tensor, Tensor]:
        """Fuse one stage.

        Args:
            student_feat (Tensor): Student feature (N, C_s, H_s, W_s).
            residual (Tensor, optional): Fused features of the deeper stage
                (N, mid, h, w); None for the deepest stage.
            out_size (Sequence[int]): Teacher's (H_t, W_t).

        Returns:
            tuple[Tensor, Tensor]: The stage output (N, C_t, H_t, W_t) and
            the residual for the next shallower stage (N, mid, H_t, W_t).
        """
        fused = self.reduce(student_feat)
        if self.attention is not None:
            residual = F.interpolate(residual, size=fused.shape[2:],
                                     mode='nearest')
            weights = torch.sigmoid(
                self.attention(torch.cat([fused, residual], dim=1)))
            fused = fused * weights[:, :1] + residual * weights[:, 1:]
        if tuple(fused.shape[2:]) != tuple(out_size):
            fused = F.interpolate(fused, size=tuple(out_size),
                                  mode='nearest')
        return self.output(fused), fused


def hierarchical_context_loss(pred: Tensor, target: Tensor) -> Tensor:
    """HCL of one stage: MSE at full size and on pooled grids.

    ``MSE(pred, target)`` (weight 1) plus, for each pool size l in
    (4, 2, 1) smaller than the height H, ``MSE(avgpool_l(pred),
    avgpool_l(target))`` (adaptive average pooling to l x l); the i-th pool
    size used (i = 1, 2, 3) has weight 2^-i. The sum is divided by the sum
    of the weights used. This is the authors' rule (CIFAR, ImageNet and
    mdistiller code): the weights halve per pool actually used, so with
    H > 4 they are 1, 1/2, 1/4, 1/8 (normaliser 1.875), with H in {3, 4}
    the 2x2 and 1x1 pools get 1/2 and 1/4 (normaliser 1.75), with H = 2 the
    1x1 pool gets 1/2 (normaliser 1.5), and with H = 1 only the MSE counts.

    Args:
        pred (Tensor): Fused student output (N, C, H, W).
        target (Tensor): Teacher feature, same shape.

    Returns:
        Tensor: Scalar loss.
    """
    height = pred.shape[2]
    pool_sizes = [size for size in HCL_POOL_SIZES if size < height]
    weights = [0.5**(rank + 1) for rank in range(len(pool_sizes))]
    loss = F.mse_loss(pred, target)
    for size, weight in zip(pool_sizes, weights):
        loss = loss + weight * F.mse_loss(
            F.adaptive_avg_pool2d(pred, size),
            F.adaptive_avg_pool2d(target, size))
    return loss / (1.0 + sum(weights))


@MODELS.register_module()
class ReviewKDLoss(nn.Module):
    """Knowledge-review distillation over several stages at once.

    The student stages, plus (``use_pooled_feature``) the globally pooled
    deepest feature as a 1 x 1 stage, are fused from deep to shallow by one
    :class:`AttentionBasedFusion` each, so that every output sees the
    stage's own feature and, through the residual, all deeper ones. Each
    output is compared with the teacher feature of the same stage by
    :func:`hierarchical_context_loss`; stages are summed unweighted:

        loss = loss_weight * min(1, epoch / warmup_epochs)
               * sum_stages HCL(ABF_stage(...), teacher_stage)

    The pooled stage is ``adaptive_avg_pool2d(feat, 1)`` of the deepest
    selected level of each network. The teacher features are detached. The
    fusion and the loss run in float32 with autocast disabled (float64
    inputs stay float64; the module's parameters must then be float64).

    The loss is built once per distill term (``takes_all_levels``) and
    receives all selected levels together, shallow to deep.

    Note:
        The authors take the teacher's stages before the final ReLU of each
        stage (pre-activation; on ImageNet the student's too), and the
        pooled feature after it. Stage outputs of mmpretrain's ResNets are
        after the ReLU, which is in place, so the pre-activation tensor
        cannot be recorded by a hook without changing the backbone. We
        distil the post-ReLU stage outputs (the pooled feature is the same
        as the authors'): the teacher targets are non-negative, and the
        negative part of the teacher's pre-activations is not transferred.

    Args:
        student_channels (Sequence[int]): Student channels per selected
            level, shallow to deep (filled in by the distillation wrapper).
        teacher_channels (Sequence[int]): Teacher channels per selected
            level, shallow to deep (filled in by the distillation wrapper).
        mid_channels (int, optional): Channels of the fused features.
            Defaults to ``min(512, student_channels[-1])`` (the authors'
            ResNet setting; their R50 -> MobileNet run uses 256).
        use_pooled_feature (bool): Add the globally pooled deepest feature
            as a 1 x 1 stage (the authors' classification setting; off for
            their detection setting). Defaults to True.
        loss_weight (float): Weight of the loss. Defaults to 1.0 (ImageNet
            R34 -> R18; CIFAR-100 uses mostly 5.0).
        warmup_epochs (float): Linear warm-up of the weight over this many
            epochs, ``min(1, epoch / warmup_epochs)`` with 1-based epochs;
            0 for none. Defaults to 0.0 (ImageNet; CIFAR-100 uses 20).
    """

    takes_all_levels = True

    def __init__(self,
                 student_channels: Sequence[int],
                 teacher_channels: Sequence[int],
                 mid_channels: Optional[int] = None,
                 use_pooled_feature: bool = True,
                 loss_weight: float = 1.0,
                 warmup_epochs: float = 0.0) -> None:
        super().__init__()
        self.student_channels = _check_channels('student_channels',
                                                student_channels)
        self.teacher_channels = _check_channels('teacher_channels',
                                                teacher_channels)
        if len(self.student_channels) != len(self.teacher_channels):
            raise ValueError(
                'ReviewKDLoss needs one student and one teacher level per '
                f'stage: student_channels {self.student_channels} has '
                f'{len(self.student_channels)} levels, teacher_channels '
                f'{self.teacher_channels} has {len(self.teacher_channels)}.')
        if mid_channels is None:
            mid_channels = min(MAX_MID_CHANNELS, self.student_channels[-1])
        if not _is_positive_int(mid_channels):
            raise ValueError('ReviewKDLoss: mid_channels must be a positive '
                             f'int, got {mid_channels!r}.')
        if warmup_epochs < 0:
            raise ValueError('ReviewKDLoss: warmup_epochs must be >= 0, '
                             f'got {warmup_epochs}.')
        self.mid_channels = int(mid_channels)
        self.use_pooled_feature = use_pooled_feature
        self.loss_weight = loss_weight
        self.warmup_epochs = warmup_epochs
        self.fusions = self._build_fusions()

    def _build_fusions(self) -> nn.ModuleList:
        """One ABF per stage, shallow to deep (pooled stage last)."""
        in_channels = list(self.student_channels)
        out_channels = list(self.teacher_channels)
        if self.use_pooled_feature:
            in_channels.append(in_channels[-1])
            out_channels.append(out_channels[-1])
        deepest = len(in_channels) - 1
        return nn.ModuleList(
            AttentionBasedFusion(c_in, self.mid_channels, c_out,
                                 fuse=index < deepest)
            for index, (c_in, c_out) in enumerate(
                zip(in_channels, out_channels)))

    def forward(self,
                student_feats: Sequence[Tensor],
                teacher_feats: Sequence[Tensor],
                data_samples: Optional[list] = None) -> Tensor:
        """Compute the loss over all selected levels.

        Args:
            student_feats (Sequence[Tensor]): Student features
                (N, C_l, H_l, W_l), shallow to deep.
            teacher_feats (Sequence[Tensor]): Teacher features, shallow to
                deep; spatial sizes may differ from the student's.
            data_samples (list, optional): Unused; part of the shared
                feature-loss call convention.

        Returns:
            Tensor: Scalar loss.
        """
        self._check_inputs(student_feats, teacher_feats)
        with full_precision(student_feats[0]) as dtype:
            students = [feat.to(dtype) for feat in student_feats]
            teachers = [feat.detach().to(dtype) for feat in teacher_feats]
            if self.use_pooled_feature:
                students.append(F.adaptive_avg_pool2d(students[-1], 1))
                teachers.append(F.adaptive_avg_pool2d(teachers[-1], 1))
            outputs = self.review(students,
                                  [feat.shape[2:] for feat in teachers])
            loss = sum(
                hierarchical_context_loss(output, teacher)
                for output, teacher in zip(outputs, teachers))
        warmup = warmup_factor(self.warmup_epochs, 'ReviewKDLoss')
        return self.loss_weight * warmup * loss

    def review(self, student_feats: Sequence[Tensor],
               out_sizes: Sequence[Sequence[int]]) -> List[Tensor]:
        """Fuse the stages from deep to shallow.

        Args:
            student_feats (Sequence[Tensor]): One feature per ABF (pooled
                stage included), shallow to deep.
            out_sizes (Sequence[Sequence[int]]): Teacher (H, W) per stage.

        Returns:
            list[Tensor]: The ABF outputs, shallow to deep.
        """
        outputs = []
        residual = None
        for fusion, feat, out_size in zip(self.fusions[::-1],
                                          student_feats[::-1],
                                          out_sizes[::-1]):
            output, residual = fusion(feat, residual, out_size)
            outputs.append(output)
        return outputs[::-1]

    def _check_inputs(self, student_feats: Sequence[Tensor],
                      teacher_feats: Sequence[Tensor]) -> None:
        """Raise ValueError for level counts or shapes that do not fit."""
        num_levels = len(self.student_channels)
        if len(student_feats) != num_levels or len(
                teacher_feats) != num_levels:
            raise ValueError(
                f'ReviewKDLoss was built for {num_levels} levels, got '
                f'{len(student_feats)} student and {len(teacher_feats)} '
                'teacher features.')
        for level, (student, teacher) in enumerate(
                zip(student_feats, teacher_feats)):
            s_shape, t_shape = tuple(student.shape), tuple(teacher.shape)
            if (student.dim() != 4 or teacher.dim() != 4
                    or s_shape[0] != t_shape[0]
                    or s_shape[1] != self.student_channels[level]
                    or t_shape[1] != self.teacher_channels[level]):
                raise ValueError(
                    f'ReviewKDLoss level {level}: expects 4-D features with '
                    f'equal batch sizes, {self.student_channels[level]} '
                    f'student and {self.teacher_channels[level]} teacher '
                    f'channels; got student {s_shape}, teacher {t_shape}.')


def _check_channels(name: str, channels: Sequence[int]) -> Tuple[int, ...]:
    """Return ``channels`` as a tuple of positive ints or raise ValueError."""
    if isinstance(channels, (int, str)) or not channels or not all(
            _is_positive_int(c) for c in channels):
        raise ValueError(f'ReviewKDLoss: {name} must be a non-empty list of '
                         f'positive ints (one per level), got {channels!r}.')
    return tuple(int(c) for c in channels)


def _is_positive_int(value) -> bool:
    """Whether ``value`` is an int (not a bool) greater than 0."""
    return isinstance(value, int) and not isinstance(value, bool) \
        and value > 0
