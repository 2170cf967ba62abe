# Copyright (c) mmkd_plugin contributors.
"""Build the loss of a distill term and call it the way it expects.

A term's loss is one of three kinds, told apart by its ``forward``:

- a feature loss, ``forward(student_feat, teacher_feat, data_samples)``
  (CWD, FGD, MGD, PKD, FitNet): one instance per level;
- a multi-level loss, a feature loss whose class sets
  ``takes_all_levels = True`` and whose ``forward`` takes
  ``(student_feats, teacher_feats, data_samples)`` (ReviewKD): one instance
  per term, called with all selected levels at once;
- a logit loss, ``forward(student_logits, teacher_logits[, labels])`` (KD,
  DKD, DIST, WSLD, CTKD), or a labelled feature loss, ``forward(
  student_feat, teacher_feat, labels)`` (SDD): one instance per level,
  called with the samples' hard labels when ``forward`` has a ``labels``
  parameter. Only wrappers with one label per image accept them
  (classifiers); a logit loss needs (B, C) outputs, e.g. the ``head``'s.
"""
import inspect
from functools import lru_cache
from typing import Callable, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.registry import Registry
from torch import Tensor

from .distill_term import DistillTerm

FEATURE_LOSS_ARGS = ('student_feat', 'teacher_feat', 'data_samples')
MULTI_LEVEL_LOSS_ARGS = ('student_feats', 'teacher_feats', 'data_samples')
LOGIT_LOSS_ARGS = ('student_logits', 'teacher_logits')
LABELLED_FEATURE_ARGS = ('student_feat', 'teacher_feat', 'labels')


def takes_all_levels(loss: nn.Module) -> bool:
    """bool: Whether ``loss`` is called once with all levels of its term."""
    return bool(getattr(loss, 'takes_all_levels', False))


def takes_labels(loss: nn.Module) -> bool:
    """bool: Whether ``loss`` is a logit loss that takes ``labels``."""
    loss_cls = type(loss)
    return not _is_feature_loss(loss_cls) and 'labels' in _forward_params(
        loss_cls)


def build_term_loss(term: DistillTerm, log_key: str,
                    student_feats: Sequence[Tensor],
                    teacher_feats: Sequence[Tensor], registry: Registry,
                    accepts_logit_losses: bool) -> nn.Module:
    """Build the loss of one level (or of a whole multi-level term).

    Shapes are checked on the probe features, and ``student_channels`` /
    ``teacher_channels`` are filled in for losses that take them (a list
    per level for a multi-level loss).

    Args:
        term (DistillTerm): The term.
        log_key (str): Its log key, used in messages.
        student_feats (Sequence[Tensor]): Probe features of the level (one)
            or of every selected level (multi-level loss).
        teacher_feats (Sequence[Tensor]): The teacher's, paired.
        registry (Registry): Registry the loss type is looked up in.
        accepts_logit_losses (bool): Whether the wrapper calls logit losses.

    Returns:
        nn.Module: The loss.
    """
    loss_cls = registry.get(term.loss_cfg['type'])
    if loss_cls is None:
        raise ValueError(f'distill: unknown loss type '
                         f'"{term.loss_cfg["type"]}" for {log_key}.')
    _check_call_convention(loss_cls, log_key, accepts_logit_losses)
    for s_feat, t_feat in zip(student_feats, teacher_feats):
        _check_pair(term, log_key, loss_cls, s_feat, t_feat)
    loss_cfg = dict(term.loss_cfg)
    if 'student_channels' in inspect.signature(loss_cls.__init__).parameters:
        s_channels = [feat.shape[1] for feat in student_feats]
        t_channels = [feat.shape[1] for feat in teacher_feats]
        multi = getattr(loss_cls, 'takes_all_levels', False)
        loss_cfg.setdefault('student_channels',
                            s_channels if multi else s_channels[0])
        loss_cfg.setdefault('teacher_channels',
                            t_channels if multi else t_channels[0])
    return registry.build(loss_cfg)


def _check_pair(term: DistillTerm, log_key: str, loss_cls: type,
                student_feat: Tensor, teacher_feat: Tensor) -> None:
    """Refuse features that the loss cannot compare."""
    where = (f'{log_key}: student "{term.student_path}" feature '
             f'{tuple(student_feat.shape)} vs teacher "{term.teacher_path}" '
             f'feature {tuple(teacher_feat.shape)}')
    if student_feat.dim() != teacher_feat.dim():
        raise ValueError(f'distill: rank mismatch in {where}.')
    if (student_feat.shape[2:] != teacher_feat.shape[2:]
            and not getattr(loss_cls, 'allows_spatial_mismatch', False)):
        raise ValueError(f'distill: spatial size mismatch in {where}; '
                         f'{loss_cls.__name__} needs equal sizes.')
    if _forward_params(loss_cls)[:2] == LOGIT_LOSS_ARGS:
        _check_logit_pair(where, loss_cls, student_feat, teacher_feat)
        return
    adapts = 'student_channels' in inspect.signature(
        loss_cls.__init__).parameters
    if not adapts and student_feat.shape[1] != teacher_feat.shape[1] and \
            not getattr(loss_cls, 'allows_channel_mismatch', False):
        raise ValueError(f'distill: channel mismatch in {where}; '
                         f'{loss_cls.__name__} has no channel adapter.')


def _check_logit_pair(where: str, loss_cls: type, student_logits: Tensor,
                      teacher_logits: Tensor) -> None:
    """Refuse outputs that are not (B, C) logits with equal class counts."""
    if student_logits.dim() != 2:
        raise ValueError(
            f'distill: {loss_cls.__name__} compares (B, num_classes) logits, '
            f'not {student_logits.dim()}-D features, in {where}; put it on '
            'the "head".')
    if student_logits.shape[1] != teacher_logits.shape[1]:
        raise ValueError(
            f'distill: student and teacher predict different numbers of '
            f'classes ({student_logits.shape[1]} vs '
            f'{teacher_logits.shape[1]}) in {where}.')


@lru_cache(maxsize=None)
def _forward_params(loss_cls: type) -> Tuple[str, ...]:
    return tuple(inspect.signature(loss_cls.forward).parameters)[1:]


@lru_cache(maxsize=None)
def _is_feature_loss(loss_cls: type) -> bool:
    expected = (MULTI_LEVEL_LOSS_ARGS if getattr(
        loss_cls, 'takes_all_levels', False) else FEATURE_LOSS_ARGS)
    return tuple(_forward_params(loss_cls)[:3]) == expected


def _check_call_convention(loss_cls: type, log_key: str,
                           accepts_logit_losses: bool) -> None:
    """Refuse a loss whose ``forward`` a term cannot call."""
    if _is_feature_loss(loss_cls):
        return
    params = _forward_params(loss_cls)
    if accepts_logit_losses and (params[:2] == LOGIT_LOSS_ARGS
                                 or params[:3] == LABELLED_FEATURE_ARGS):
        return
    logit_note = (
        'or as a logit loss, loss(student_logits, teacher_logits[, '
        'labels=...])' if accepts_logit_losses else
        'logit losses are used through a distilling head (e.g. LDGFLHead, '
        'DistillRoIHead)')
    raise ValueError(
        f'distill: {loss_cls.__name__} cannot be used in a distill term '
        f'({log_key}): a term calls its loss as loss(student_feat, '
        f'teacher_feat, data_samples) ({logit_note}), but '
        f'{loss_cls.__name__}.forward takes ({", ".join(params[:3])}, ...). '
        'Feature losses: CWDLoss, FGDLoss, MGDLoss, PKDLoss, FitNetLoss.')


def call_term_loss(loss: nn.Module, student_feat, teacher_feat,
                   data_samples: list, labels: Callable[[], Tensor],
                   extra: Optional[dict] = None) -> Tensor:
    """Call a term's loss with the arguments its kind takes.

    Args:
        loss (nn.Module): A loss built by :func:`build_term_loss`.
        student_feat: The student's level (a tuple of levels for a
            multi-level loss).
        teacher_feat: The teacher's, paired.
        data_samples (list): The batch's data samples.
        labels (Callable[[], Tensor]): Gives the samples' hard labels (B, ),
            called only for a loss that takes them.
        extra (dict, optional): Keyword arguments of a feature loss built
            once for all levels (see ``shared_level_inputs``).

    Returns:
        Tensor: The loss value.
    """
    if _is_feature_loss(type(loss)):
        return loss(student_feat, teacher_feat, data_samples, **(extra or {}))
    if takes_labels(loss):
        return loss(student_feat, teacher_feat, labels=labels())
    return loss(student_feat, teacher_feat)
