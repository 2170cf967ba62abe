# Copyright (c) mmkd_plugin contributors.
"""A detector that trains an mmdet student against a frozen teacher."""
import copy
import inspect
import logging
from contextlib import ExitStack
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, OptSampleList, SampleList
from mmengine.logging import print_log
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)
from torch import Tensor

from ...utils.checkpoint_keys import (STUDENT_PREFIX, TEACHER_PREFIX,
                                      split_distillation_state)
from ..utils import (FeatureRecorder, TeacherInputRenorm, TeacherLinkMixin,
                     resolve_model_config, teacher_autocast)
from .distill_term import DistillTerm, parse_distill_terms

SOURCE_TAGS = {'neck': 'fpn', 'backbone': 'backbone'}


@MODELS.register_module()
class DistillationDetector(BaseDetector):
    """Wraps an mmdet student detector and a frozen teacher detector.

    The student trains with its own detection losses plus the distillation
    losses listed in ``distill``, which compare the outputs of student and
    teacher modules. Prediction uses the student alone.

    The teacher is kept out of the module tree on purpose: it is never seen
    by the optimizer, by DDP or by checkpoints (unless
    ``save_teacher_in_ckpt``), it never receives gradients and it stays in
    eval mode whatever ``train()`` says. ``to()``/``cuda()`` still move it.

    Args:
        student (dict | str): Student model dict, or a config reference such
            as ``'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'``, or
            ``dict(cfg_path=<reference>, **overrides)``.
        teacher (dict | str): Teacher model, in the same forms.
        distill (list[dict]): Distillation terms. Each holds ``student`` (a
            module path of the student: ``'neck'``, ``'backbone'`` or any
            dotted path), ``teacher`` (defaults to the student's path),
            ``loss`` (a loss config), optional ``levels`` (indices of the
            module's output tuple, default all) and ``name`` (log-key stem,
            default from the loss type: ``CWDLoss`` -> ``cwd``). Each level
            gets its own loss instance, logged as e.g. ``loss_cwd_fpn0``.
            May be empty when a student head distils by itself (a head
            with :class:`TeacherLinkMixin`, e.g. for LD or DKD): such heads
            are linked to the teacher at build time and see the teacher's
            neck features during each step.
        teacher_ckpt (str, optional): Teacher checkpoint path or URL, loaded
            in ``init_weights`` (so when training starts, also on resume).
            Training without it is refused unless ``allow_random_teacher``.
        teacher_ckpt_strict (bool): Raise on missing or unexpected keys in
            ``teacher_ckpt``. Defaults to True.
        allow_random_teacher (bool): Let ``init_weights`` go on without
            ``teacher_ckpt``, distilling from a randomly initialised teacher
            (for tests). Defaults to False.
        student_ckpt (str, optional): A checkpoint of the student, loaded in
            ``init_weights``: a plain mmdet checkpoint of the student's model
            or a DistillationDetector checkpoint. ``load_from`` takes both
            kinds too. A checkpoint that matches no student weight is an
            error.
        student_init_from_teacher (Sequence[str]): Module prefixes (e.g.
            ``'neck'``, ``'bbox_head'``) whose weights are copied from the
            teacher into the student in ``init_weights``.
        teacher_autocast (str, optional): ``'bfloat16'`` or ``'float16'`` to
            run the teacher's forward under autocast. Without it the teacher
            runs in float32 with autocast off, also under ``--amp``. Either
            way its features reach the losses in float32, and every
            distillation loss computes in float32.
        save_teacher_in_ckpt (bool): Keep the teacher's weights in the
            state dict (and so in checkpoints). Defaults to False.
        probe_input_size (tuple[int, int]): Size of the blank image run
            through both models at build time to check that the features of
            every term match. Defaults to (256, 256).
        data_preprocessor (dict, optional): Defaults to the student's.
        init_cfg (dict, optional): Initialisation config of the wrapper.
    """

    def __init__(self,
                 student: Union[dict, str],
                 teacher: Union[dict, str],
                 distill: Sequence[dict] = (),
                 teacher_ckpt: Optional[str] = None,
                 teacher_ckpt_strict: bool = True,
                 allow_random_teacher: bool = False,
                 student_ckpt: Optional[str] = None,
                 student_init_from_teacher: Sequence[str] = (),
                 teacher_autocast: Optional[str] = None,
                 save_teacher_in_ckpt: bool = False,
                 probe_input_size: Tuple[int, int] = (256, 256),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        student_cfg = resolve_model_config(student, 'student')
        teacher_cfg = resolve_model_config(teacher, 'teacher')
        if data_preprocessor is None:
            data_preprocessor = student_cfg.get('data_preprocessor')
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        student_cfg.pop('data_preprocessor', None)
        teacher_preprocessor = teacher_cfg.pop('data_preprocessor', None)
        self.student = MODELS.build(student_cfg)
        # A tuple keeps the teacher out of the module tree (see class doc).
        self._teacher = (MODELS.build(teacher_cfg), )
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self._teacher_renorm = TeacherInputRenorm.from_configs(
            self.data_preprocessor, teacher_preprocessor)

        self.teacher_ckpt = teacher_ckpt
        self.teacher_ckpt_strict = teacher_ckpt_strict
        self.allow_random_teacher = allow_random_teacher
        self.student_ckpt = student_ckpt
        self.student_init_from_teacher = tuple(student_init_from_teacher)
        self.teacher_autocast = _autocast_dtype(teacher_autocast)
        self.save_teacher_in_ckpt = save_teacher_in_ckpt
        if save_teacher_in_ckpt:
            self._register_state_dict_hook(_add_teacher_state)
        self._register_load_state_dict_pre_hook(self._route_checkpoint_keys)

        self._linked_heads = [
            m for m in self.student.modules()
            if isinstance(m, TeacherLinkMixin)
        ]
        for head in self._linked_heads:
            head.link_teacher(self.teacher)
        self.terms = parse_distill_terms(
            distill, SOURCE_TAGS, allow_empty=bool(self._linked_heads))
        self._student_recorder = FeatureRecorder(
            self.student, [t.student_path for t in self.terms], 'student')
        # Linked heads read the teacher's neck outputs.
        self._teacher_paths = [t.teacher_path for t in self.terms] + \
            (['neck'] if self._linked_heads else [])
        self._teacher_recorder = FeatureRecorder(self.teacher,
                                                 self._teacher_paths,
                                                 'teacher')
        self.distill_losses = self._build_losses(probe_input_size)

    @property
    def teacher(self) -> nn.Module:
        """nn.Module: The frozen teacher detector."""
        return self._teacher[0]

    def teacher_inputs(self, batch_inputs: Tensor) -> Tensor:
        """Return ``batch_inputs`` re-normalised for the teacher's input."""
        return self._teacher_renorm(batch_inputs)

    # ------------------------------------------------------------ building
    def _build_losses(self, probe_input_size: Tuple[int, int]) -> nn.ModuleDict:
        """Check every term on a probe image and build one loss per level."""
        losses = nn.ModuleDict()
        if not self.terms:
            return losses
        student_feats, teacher_feats = self._probe_features(probe_input_size)
        for term in self.terms:
            self._check_call_counts(term)
            pairs = term.select_levels(student_feats[term.student_path],
                                       teacher_feats[term.teacher_path])
            for log_key, (s_feat, t_feat) in pairs.items():
                if log_key in losses:
                    raise ValueError(f'distill: two terms log as "{log_key}";'
                                     ' give them different "name"s.')
                losses[log_key] = _build_loss(term, log_key, s_feat, t_feat)
        return losses

    def _check_call_counts(self, term: DistillTerm) -> None:
        """Refuse a term whose modules run a different number of times."""
        student_calls = self._student_recorder.call_counts[term.student_path]
        teacher_calls = self._teacher_recorder.call_counts[term.teacher_path]
        if student_calls != teacher_calls:
            raise ValueError(
                f'distill {term.log_stem}: the student module '
                f'"{term.student_path}" runs {student_calls} times per '
                f'forward, the teacher module "{term.teacher_path}" '
                f'{teacher_calls} times; every call is a level, so they must '
                'run equally often.')

    @torch.no_grad()
    def _probe_features(self, size: Tuple[int, int]):
        """Run a blank image through both models and record the features."""
        probe = torch.zeros(1, 3, *size)
        sample = DetDataSample(metainfo=dict(
            img_shape=size, ori_shape=size, pad_shape=size,
            batch_input_shape=size, scale_factor=(1.0, 1.0)))
        was_training = self.student.training
        self.student.eval()
        try:
            with self._student_recorder.recording() as student_feats:
                _run_minimal_forward(self.student,
                                     [t.student_path for t in self.terms],
                                     probe, [sample])
        finally:
            self.student.train(was_training)
        with self._teacher_recorder.recording() as teacher_feats:
            _run_minimal_forward(self.teacher, self._teacher_paths, probe,
                                 [sample])
        return student_feats, teacher_feats

    # ------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Initialise the student, load the teacher, copy teacher modules."""
        super().init_weights()
        if self.teacher_ckpt is not None:
            self._load_teacher_ckpt()
        elif self.allow_random_teacher:
            print_log('DistillationDetector: no teacher_ckpt, distilling '
                      'from a random teacher (allow_random_teacher=True).',
                      logger='current', level=logging.WARNING)
        else:
            raise ValueError(
                'DistillationDetector: no teacher_ckpt given, so training '
                'would distil from a randomly initialised teacher. Set '
                'model.teacher_ckpt to the teacher\'s checkpoint (or '
                'model.allow_random_teacher=True, e.g. for tests).')
        if self.student_ckpt is not None:
            _load_checkpoint_to_model(
                self, read_checkpoint(self.student_ckpt, 'student_ckpt'))
        for prefix in self.student_init_from_teacher:
            self._copy_teacher_module(prefix)

    def _load_teacher_ckpt(self) -> None:
        checkpoint = read_checkpoint(self.teacher_ckpt, 'teacher_ckpt')
        try:
            _load_checkpoint_to_model(self.teacher, checkpoint,
                                      strict=self.teacher_ckpt_strict,
                                      logger='current')
        except RuntimeError as err:
            raise ValueError(
                f'teacher_ckpt "{self.teacher_ckpt}" does not match the '
                f'teacher model (set teacher_ckpt_strict=False to load it '
                f'anyway): {err}') from err

    def _copy_teacher_module(self, prefix: str) -> None:
        """Copy the teacher's ``prefix`` weights into the student."""
        teacher_state = {
            key: value
            for key, value in self.teacher.state_dict().items()
            if key == prefix or key.startswith(prefix + '.')
        }
        student_state = self.student.state_dict()
        if not teacher_state:
            raise ValueError('student_init_from_teacher: the teacher has no '
                             f'weights under "{prefix}".')
        bad = [
            f'{key}: teacher {tuple(value.shape)}, student '
            f'{tuple(student_state[key].shape) if key in student_state else "missing"}'
            for key, value in teacher_state.items()
            if key not in student_state
            or student_state[key].shape != value.shape
        ]
        if bad:
            raise ValueError('student_init_from_teacher: cannot copy '
                             f'"{prefix}" from teacher to student; '
                             'mismatched weights:\n  ' + '\n  '.join(bad))
        self.student.load_state_dict(teacher_state, strict=False)
        print_log(f'DistillationDetector: student "{prefix}" initialised '
                  'from the teacher.', logger='current')

    def _route_checkpoint_keys(self, state_dict: dict, prefix: str,
                               *args) -> None:
        """Load-state pre-hook: send each checkpoint key where it belongs.

        ``teacher.*`` keys load into the teacher. A checkpoint without
        ``student.*`` keys is taken for a plain mmdet checkpoint of the
        student (e.g. ``load_from`` or an exported student) and its keys
        get the ``student.`` prefix. A checkpoint that matches no student
        weight (by name and shape) raises a ValueError.
        """
        own_keys = [k for k in state_dict if k.startswith(prefix)]
        parts = split_distillation_state(state_dict, prefix)
        for key in own_keys:
            del state_dict[key]
        if parts.teacher:
            self.teacher.load_state_dict(parts.teacher)
        student_prefix = prefix + STUDENT_PREFIX
        state_dict.update((student_prefix + key, value)
                          for key, value in parts.student.items())
        state_dict.update((prefix + key, value)
                          for key, value in parts.others.items())
        student_state = self.student.state_dict(prefix=student_prefix)
        matched = [
            key for key, value in state_dict.items()
            if key in student_state and getattr(value, 'shape', None) ==
            student_state[key].shape
        ]
        if not matched:
            own_keys = [k for k in own_keys
                        if not k.startswith(prefix + TEACHER_PREFIX)]
            examples = ', '.join(own_keys[:3]) or 'none'
            raise ValueError(
                'DistillationDetector: the checkpoint matches no weight of '
                f'the student ({type(self.student).__name__}), neither as a '
                'DistillationDetector checkpoint ("student.*" keys) nor as a '
                f'plain checkpoint of the student; its {len(own_keys)} keys '
                f'start with: {examples}.')

    def _apply(self, fn, *args, **kwargs):
        """Apply ``to()``/``cuda()``/``half()``-style changes to the teacher
        too, since it is outside the module tree."""
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> 'DistillationDetector':
        """Set the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    # ------------------------------------------------------------ forward
    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Student detection losses plus the distillation losses.

        Args:
            batch_inputs (Tensor): Images (N, 3, H, W), student-normalised.
            batch_data_samples (list[DetDataSample]): Batch annotations.

        Returns:
            dict[str, Tensor]: All losses.
        """
        if self.distill_stopped:  # see stop_distillation()
            return self.student.loss(batch_inputs, batch_data_samples)
        teacher_feats = self._teacher_features(batch_inputs,
                                               batch_data_samples)
        with ExitStack() as stack:
            for head in self._linked_heads:
                stack.enter_context(
                    head.teacher_step(teacher_feats['neck'],
                                      self.teacher_autocast))
            student_feats = stack.enter_context(
                self._student_recorder.recording())
            losses = self.student.loss(batch_inputs, batch_data_samples)
        for term in self.terms:
            pairs = term.select_levels(student_feats[term.student_path],
                                       teacher_feats[term.teacher_path])
            level_inputs = self._shared_level_inputs(pairs,
                                                     batch_data_samples)
            for (log_key, (s_feat, t_feat)), extra in zip(
                    pairs.items(), level_inputs):
                losses[log_key] = self.distill_losses[log_key](
                    s_feat, t_feat, batch_data_samples, **extra)
        return losses

    def _shared_level_inputs(self, pairs: dict,
                             batch_data_samples: SampleList) -> List[dict]:
        """Extra inputs a loss class builds once for all levels of a term.

        A loss with a ``shared_level_inputs(data_samples, feat_hws)``
        method (e.g. FGD's box masks) gets it called once per step and term
        with every level's (H, W); its per-level dicts become keyword
        arguments of each level's call. Other losses get none.
        """
        first_loss = self.distill_losses[next(iter(pairs))]
        build = getattr(first_loss, 'shared_level_inputs', None)
        if build is None:
            return [{}] * len(pairs)
        return build(batch_data_samples,
                     [t_feat.shape[-2:] for _, t_feat in pairs.values()])

    @torch.no_grad()
    def _teacher_features(self, batch_inputs: Tensor,
                          batch_data_samples: SampleList) -> dict:
        """Run only the part of the teacher the terms need.

        Returns:
            dict[str, tuple[Tensor]]: Module path -> float32 levels.
        """
        autocast = teacher_autocast(batch_inputs.device.type,
                                    self.teacher_autocast)
        with autocast, self._teacher_recorder.recording() as teacher_feats:
            _run_minimal_forward(self.teacher, self._teacher_paths,
                                 self._teacher_renorm(batch_inputs.float()),
                                 batch_data_samples)
        return {
            path: tuple(feat.float() for feat in feats)
            for path, feats in teacher_feats.items()
        }

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict with the student alone."""
        return self.student.predict(batch_inputs, batch_data_samples,
                                    rescale=rescale)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None):
        """The student's raw forward."""
        return self.student._forward(batch_inputs, batch_data_samples)

    def extract_feat(self, batch_inputs: Tensor):
        """The student's features."""
        return self.student.extract_feat(batch_inputs)

    # ---------------------------------------- training hooks and EMA copies
    # mmdet's and mmengine's training hooks reach into the model they train;
    # the members below give them the student where they expect a detector.

    _distill_stopped = False

    @property
    def bbox_head(self) -> nn.Module:
        """nn.Module: The student's ``bbox_head``.

        mmdet's ``YOLOXModeSwitchHook`` switches on the L1 loss with
        ``model.bbox_head.use_l1 = True``; this reaches the student's head
        (the teacher's head never computes a loss).
        """
        if 'bbox_head' not in self.student._modules:
            raise AttributeError(
                f'the student ({type(self.student).__name__}) of this '
                'DistillationDetector has no bbox_head.')
        return self.student.bbox_head

    @property
    def distill_stopped(self) -> bool:
        """bool: Whether :meth:`stop_distillation` was called."""
        return self._distill_stopped

    @property
    def self_distilling_heads(self) -> List[str]:
        """list[str]: Names of the student's modules that distil inside
        their own loss (:class:`TeacherLinkMixin` heads such as LD's or
        DKD's); :meth:`stop_distillation` cannot switch them off."""
        linked = {id(head) for head in self._linked_heads}
        return [
            name for name, module in self.student.named_modules()
            if id(module) in linked
        ]

    def stop_distillation(self) -> None:
        """Train the student alone from now on.

        :meth:`loss` then returns the student's detection losses only: the
        teacher no longer runs and the distillation terms leave the loss
        dict (and the logs); their losses' own parameters (align convs)
        stop receiving gradients. Used by ``StopDistillHook``. Not
        persisted in checkpoints: the hook calls it again on resume.

        Raises:
            ValueError: If a student head distils inside its own loss
                (:attr:`self_distilling_heads`): such a head has no switch.
        """
        heads = self.self_distilling_heads
        if heads:
            raise ValueError(
                'DistillationDetector: cannot stop distillation, the '
                f'student heads {heads} distil inside their own loss '
                '(TeacherLinkMixin) and have no switch to train without '
                'the teacher.')
        self._distill_stopped = True

    def __deepcopy__(self, memo: dict) -> 'DistillationDetector':
        """Deep-copy everything but the frozen teacher, which is shared.

        mmengine's ``EMAHook`` (``ExpMomentumEMA``) deep-copies the model
        to hold the averaged weights. The teacher is frozen and outside the
        module tree (so never averaged nor swapped by the EMA), and copying
        it would only double its memory: the copy shares it, with the
        recorder whose forward hooks sit on the teacher's modules.

        Args:
            memo (dict): ``copy.deepcopy``'s memo.

        Returns:
            DistillationDetector: The copy.
        """
        shared = [self.teacher, *self.teacher.modules(),
                  *self.teacher.parameters(), *self.teacher.buffers()]
        if hasattr(self, '_teacher_recorder'):
            shared.append(self._teacher_recorder)
        for obj in shared:
            memo[id(obj)] = obj
        copied = self.__class__.__new__(self.__class__)
        memo[id(self)] = copied
        copied.__setstate__(copy.deepcopy(self.__dict__, memo))
        return copied

    # ------------------------------------------------------------ log keys
    def distill_loss_keys(self) -> List[str]:
        """Log keys of the distillation losses of a training step.

        Those of the ``distill`` terms (e.g. ``loss_cwd_fpn0``) and those of
        student heads that distil inside their own loss (LD's ``loss_ld``,
        ``loss_ld_vlr``, ``loss_kd_cls``; :class:`DistillRoIHead`'s
        ``loss_dkd`` or ``loss_kd``). Every other loss key of
        :meth:`loss` is a detection loss.

        Returns:
            list[str]: The keys.
        """
        keys = list(self.distill_losses.keys())
        for head in self._linked_heads:
            keys += head.distill_loss_keys()
        return keys


def _run_minimal_forward(model: nn.Module, module_paths: List[str],
                         inputs: Tensor, data_samples: SampleList) -> None:
    """Run the least of ``model`` that produces all ``module_paths``.

    Backbone-only paths run the backbone; backbone and neck paths run
    ``extract_feat``; anything else runs the detector's head forward
    (``_forward``), never its losses or assigners.
    """
    roots = {path.split('.')[0] for path in module_paths}
    if roots <= {'backbone'}:
        model.backbone(inputs)
    elif roots <= {'backbone', 'neck'}:
        model.extract_feat(inputs)
    else:
        model._forward(inputs, data_samples)


def _build_loss(term: DistillTerm, log_key: str, student_feat: Tensor,
                teacher_feat: Tensor) -> nn.Module:
    """Build the loss of one level, checking shapes on the probe features."""
    loss_cls = MODELS.get(term.loss_cfg['type'])
    if loss_cls is None:
        raise ValueError(f'distill: unknown loss type '
                         f'"{term.loss_cfg["type"]}" for {log_key}.')
    where = (f'{log_key}: student "{term.student_path}" feature '
             f'{tuple(student_feat.shape)} vs teacher "{term.teacher_path}" '
             f'feature {tuple(teacher_feat.shape)}')
    if student_feat.dim() != teacher_feat.dim():
        raise ValueError(f'distill: rank mismatch in {where}.')
    if (student_feat.shape[2:] != teacher_feat.shape[2:]
            and not getattr(loss_cls, 'allows_spatial_mismatch', False)):
        raise ValueError(f'distill: spatial size mismatch in {where}; '
                         f'{loss_cls.__name__} needs equal sizes.')
    _check_feature_loss_convention(loss_cls, log_key)
    loss_cfg = dict(term.loss_cfg)
    accepts_channels = 'student_channels' in inspect.signature(
        loss_cls.__init__).parameters
    if accepts_channels:
        loss_cfg.setdefault('student_channels', student_feat.shape[1])
        loss_cfg.setdefault('teacher_channels', teacher_feat.shape[1])
    elif student_feat.shape[1] != teacher_feat.shape[1]:
        raise ValueError(f'distill: channel mismatch in {where}; '
                         f'{loss_cls.__name__} has no channel adapter.')
    return MODELS.build(loss_cfg)


FEATURE_LOSS_ARGS = ('student_feat', 'teacher_feat', 'data_samples')


def _check_feature_loss_convention(loss_cls: type, log_key: str) -> None:
    """Refuse a loss that is not called as a feature loss.

    A distill term calls ``loss(student_feat, teacher_feat, data_samples)``;
    logit losses (``KDLoss``, ``LDLoss``) belong in a distilling head, and
    mmdet's losses take ``(pred, target, weight, ...)``.
    """
    params = list(inspect.signature(loss_cls.forward).parameters)[1:4]
    if tuple(params) != FEATURE_LOSS_ARGS:
        raise ValueError(
            f'distill: {loss_cls.__name__} cannot be used in a distill term '
            f'({log_key}): a term calls its loss as loss(student_feat, '
            f'teacher_feat, data_samples), but {loss_cls.__name__}.forward '
            f'takes ({", ".join(params)}, ...). Feature losses: CWDLoss, '
            'FGDLoss, MGDLoss, PKDLoss, FitNetLoss; logit losses are used '
            'through a distilling head (e.g. LDGFLHead, DistillRoIHead).')


def read_checkpoint(filename: str, what: str) -> dict:
    """Load a checkpoint file, naming the file and the argument on failure.

    Args:
        filename (str): Path or URL.
        what (str): The argument it came from, e.g. ``'teacher_ckpt'``.

    Returns:
        dict: The loaded checkpoint.
    """
    try:
        return _load_checkpoint(filename, map_location='cpu')
    except FileNotFoundError as err:
        raise FileNotFoundError(f'{what} "{filename}" not found.') from err
    except Exception as err:  # torch.load's errors vary with the damage
        raise ValueError(
            f'{what} "{filename}" cannot be read as a checkpoint (a '
            f'truncated download, or not a torch checkpoint): '
            f'{type(err).__name__}: {err}') from err


def _autocast_dtype(name: Optional[str]) -> Optional[torch.dtype]:
    """Map ``teacher_autocast`` to a dtype, refusing unknown names."""
    allowed = {None: None, 'bfloat16': torch.bfloat16,
               'float16': torch.float16}
    if name not in allowed:
        raise ValueError(f'teacher_autocast must be one of "bfloat16", '
                         f'"float16" or None, got {name!r}.')
    return allowed[name]


def _add_teacher_state(module: DistillationDetector, state_dict: dict,
                       prefix: str, local_metadata: dict) -> None:
    """State-dict hook: add the teacher's weights under ``teacher.``."""
    state_dict.update(
        module.teacher.state_dict(prefix=prefix + TEACHER_PREFIX))
