# Copyright (c) mmkd_plugin contributors.
"""What every distillation wrapper shares: a student, a frozen teacher and
the ``distill`` terms between them."""
import copy
import functools
import logging
from contextlib import ExitStack
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.registry import Registry
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from torch import Tensor

from ...utils.read_checkpoint import read_checkpoint
from ..utils import (FeatureRecorder, TeacherInputRenorm, TeacherLinkMixin,
                     resolve_model_config, teacher_autocast)
from .distill_term import DistillTerm, parse_distill_terms
from .teacher_weights import (add_teacher_state, copy_teacher_module,
                              load_teacher_checkpoint, route_checkpoint_keys)
from .term_losses import build_term_loss, call_term_loss, takes_all_levels


class BaseDistiller:
    """Student + frozen teacher + distill terms; mixed into a task's base
    model class (``DistillationDetector(BaseDistiller, BaseDetector)``).

    The student trains with its own losses plus the losses of the
    ``distill`` terms, which compare outputs of student and teacher
    modules recorded during the step. Prediction uses the student alone.

    The teacher is kept out of the module tree on purpose: it is never seen
    by the optimizer, by DDP or by checkpoints (unless
    ``save_teacher_in_ckpt``), it never receives gradients and it stays in
    eval mode whatever ``train()`` says. ``to()``/``cuda()`` still move it.

    A task's wrapper sets :attr:`registry` (where student, teacher and
    losses are built), :attr:`source_tags`, :attr:`accepts_logit_losses`,
    :attr:`default_preprocessor`, and implements
    :meth:`_probe_data_samples` and :meth:`_run_head_forward`; a
    classifier also :meth:`_hard_labels`.

    Args:
        student (dict | str): Student model dict, or a config reference such
            as ``'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'``, or
            ``dict(cfg_path=<reference>, **overrides)``.
        teacher (dict | str): Teacher model, in the same forms.
        distill (list[dict]): Distillation terms. Each holds ``student`` (a
            module path of the student: ``'neck'``, ``'backbone'``,
            ``'head'`` or any dotted path), ``teacher`` (defaults to the
            student's path), ``loss`` (a loss config), optional ``levels``
            (indices of the module's output tuple, default all) and
            ``name`` (log-key stem, default from the loss type: ``CWDLoss``
            -> ``cwd``). Each level gets its own loss instance, logged as
            e.g. ``loss_cwd_fpn0``; a multi-level loss (ReviewKD) gets one
            per term. May be empty when a student head distils by itself (a
            head with :class:`TeacherLinkMixin`, e.g. for LD or DKD): such
            heads are linked to the teacher at build time and see the
            teacher's neck features during each step.
        teacher_ckpt (str, optional): Teacher checkpoint path or URL, loaded
            in ``init_weights`` (so when training starts, also on resume).
            Training without it is refused unless ``allow_random_teacher``.
        teacher_ckpt_strict (bool): Raise on missing or unexpected keys in
            ``teacher_ckpt``. Defaults to True.
        allow_random_teacher (bool): Let ``init_weights`` go on without
            ``teacher_ckpt``, distilling from a randomly initialised teacher
            (for tests). Defaults to False.
        student_ckpt (str, optional): A checkpoint of the student, loaded in
            ``init_weights``: a plain checkpoint of the student's model or a
            distillation checkpoint. ``load_from`` takes both kinds too. A
            checkpoint that matches no student weight is an error.
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

    registry: Registry
    source_tags: Dict[str, str] = {}
    accepts_logit_losses = False
    default_preprocessor: Optional[str] = None
    _distill_stopped = False

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
        super().__init__(
            data_preprocessor=self._build_preprocessor(data_preprocessor),
            init_cfg=init_cfg)
        student_cfg.pop('data_preprocessor', None)
        teacher_preprocessor = teacher_cfg.pop('data_preprocessor', None)
        self.student = self.registry.build(student_cfg)
        # A tuple keeps the teacher out of the module tree (see class doc).
        self._teacher = (self.registry.build(teacher_cfg), )
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
            self._register_state_dict_hook(add_teacher_state)
        self._register_load_state_dict_pre_hook(self._route_checkpoint_keys)

        self._linked_heads = [
            m for m in self.student.modules()
            if isinstance(m, TeacherLinkMixin)
        ]
        for head in self._linked_heads:
            head.link_teacher(self.teacher)
        self.terms = parse_distill_terms(
            distill, self.source_tags, allow_empty=bool(self._linked_heads))
        self._student_recorder = FeatureRecorder(
            self.student, [t.student_path for t in self.terms], 'student')
        # Linked heads read the teacher's neck outputs.
        self._teacher_paths = [t.teacher_path for t in self.terms] + \
            (['neck'] if self._linked_heads else [])
        self._teacher_recorder = FeatureRecorder(self.teacher,
                                                 self._teacher_paths,
                                                 'teacher')
        self.distill_losses = self._build_losses(probe_input_size)

    def _build_preprocessor(
            self, cfg: Optional[dict]) -> Optional[nn.Module]:
        """Build the wrapper's data preprocessor in :attr:`registry`, with
        :attr:`default_preprocessor` as the type when the config has none
        (mmpretrain configs omit it)."""
        if cfg is None and self.default_preprocessor is None:
            return None
        cfg = dict(cfg or {})
        if self.default_preprocessor is not None:
            cfg.setdefault('type', self.default_preprocessor)
        return self.registry.build(cfg)

    @property
    def teacher(self) -> nn.Module:
        """nn.Module: The frozen teacher."""
        return self._teacher[0]

    def teacher_inputs(self, batch_inputs: Tensor) -> Tensor:
        """Return ``batch_inputs`` re-normalised for the teacher's input."""
        return self._teacher_renorm(batch_inputs)

    # ------------------------------------------------- task-specific parts
    def _probe_data_samples(self, size: Tuple[int, int]) -> list:
        """Data samples of the blank probe image of ``size``."""
        raise NotImplementedError

    def _run_head_forward(self, model: nn.Module, inputs: Tensor,
                          data_samples: list) -> None:
        """Run ``model`` up to its head's raw outputs, no losses."""
        raise NotImplementedError

    def _run_minimal_forward(self, model: nn.Module, module_paths: List[str],
                             inputs: Tensor, data_samples: list) -> None:
        """Run the least of ``model`` that produces all ``module_paths``.

        Backbone-only paths run the backbone; backbone and neck paths run
        ``extract_feat``; anything else runs :meth:`_run_head_forward`.
        """
        roots = {path.split('.')[0] for path in module_paths}
        if roots <= {'backbone'}:
            model.backbone(inputs)
        elif roots <= {'backbone', 'neck'}:
            model.extract_feat(inputs)
        else:
            self._run_head_forward(model, inputs, data_samples)

    def _hard_labels(self, data_samples: list) -> Tensor:
        """The samples' class labels (B, ), for logit losses."""
        raise NotImplementedError

    def _student_losses(self, batch_inputs: Tensor,
                        data_samples: list) -> Dict[str, Tensor]:
        """The student's own losses."""
        return self.student.loss(batch_inputs, data_samples)

    # ------------------------------------------------------------ building
    def _build_losses(self, probe_input_size: Tuple[int,
                                                    int]) -> nn.ModuleDict:
        """Check every term on a probe image and build its losses."""
        losses = nn.ModuleDict()
        if not self.terms:
            return losses
        student_feats, teacher_feats = self._probe_features(probe_input_size)
        for term in self.terms:
            self._check_call_counts(term)
            pairs = term.select_levels(student_feats[term.student_path],
                                       teacher_feats[term.teacher_path])
            for log_key, loss in self._build_term_losses(term, pairs):
                if log_key in losses:
                    raise ValueError(f'distill: two terms log as "{log_key}";'
                                     ' give them different "name"s.')
                if hasattr(loss, 'link_models'):
                    loss.link_models(self.student, self.teacher)
                losses[log_key] = loss
        return losses

    def _build_term_losses(self, term: DistillTerm, pairs: dict) -> list:
        """(log key, loss) of each level, or one for a multi-level loss."""
        build_args = (self.registry, self.accepts_logit_losses)
        loss_cls = self.registry.get(term.loss_cfg['type'])
        if loss_cls is not None and getattr(loss_cls, 'takes_all_levels',
                                            False):
            s_feats, t_feats = zip(*pairs.values())
            return [(term.log_stem,
                     build_term_loss(term, term.log_stem, s_feats, t_feats,
                                     *build_args))]
        return [(log_key,
                 build_term_loss(term, log_key, (s_feat, ), (t_feat, ),
                                 *build_args))
                for log_key, (s_feat, t_feat) in pairs.items()]

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
        samples = self._probe_data_samples(size)
        was_training = self.student.training
        self.student.eval()
        try:
            with self._student_recorder.recording() as student_feats:
                self._run_minimal_forward(self.student,
                                          [t.student_path for t in self.terms],
                                          probe, samples)
        finally:
            self.student.train(was_training)
        with self._teacher_recorder.recording() as teacher_feats:
            self._run_minimal_forward(self.teacher, self._teacher_paths, probe,
                                      samples)
        return student_feats, teacher_feats

    # ------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Initialise the student, load the teacher, copy teacher modules."""
        super().init_weights()
        name = type(self).__name__
        if self.teacher_ckpt is not None:
            self._load_teacher_ckpt()
        elif self.allow_random_teacher:
            print_log(f'{name}: no teacher_ckpt, distilling from a random '
                      'teacher (allow_random_teacher=True).',
                      logger='current', level=logging.WARNING)
        else:
            raise ValueError(
                f'{name}: no teacher_ckpt given, so training would distil '
                'from a randomly initialised teacher. Set model.teacher_ckpt '
                'to the teacher\'s checkpoint (or '
                'model.allow_random_teacher=True, e.g. for tests).')
        if self.student_ckpt is not None:
            _load_checkpoint_to_model(
                self, read_checkpoint(self.student_ckpt, 'student_ckpt'))
        for prefix in self.student_init_from_teacher:
            self._copy_teacher_module(prefix)

    def _load_teacher_ckpt(self) -> None:
        load_teacher_checkpoint(self.teacher, self.teacher_ckpt,
                                self.teacher_ckpt_strict)

    def _copy_teacher_module(self, prefix: str) -> None:
        copy_teacher_module(self.teacher, self.student, prefix)
        print_log(f'{type(self).__name__}: student "{prefix}" initialised '
                  'from the teacher.', logger='current')

    def _route_checkpoint_keys(self, state_dict: dict, prefix: str,
                               *args) -> None:
        """Load-state pre-hook: see :func:`route_checkpoint_keys`."""
        route_checkpoint_keys(self, state_dict, prefix)

    def _apply(self, fn, *args, **kwargs):
        """Apply ``to()``/``cuda()``/``half()``-style changes to the teacher
        too, since it is outside the module tree."""
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> 'BaseDistiller':
        """Set the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    # ------------------------------------------------------------ forward
    def loss(self, batch_inputs: Tensor,
             batch_data_samples: list) -> Dict[str, Tensor]:
        """The student's own losses plus the distillation losses.

        Args:
            batch_inputs (Tensor): Images (N, 3, H, W), student-normalised.
            batch_data_samples (list): The batch's data samples.

        Returns:
            dict[str, Tensor]: All losses.
        """
        if self.distill_stopped:  # see stop_distillation()
            return self._student_losses(batch_inputs, batch_data_samples)
        teacher_feats = self._teacher_features(batch_inputs,
                                               batch_data_samples)
        with ExitStack() as stack:
            for head in self._linked_heads:
                stack.enter_context(
                    head.teacher_step(teacher_feats['neck'],
                                      self.teacher_autocast))
            student_feats = stack.enter_context(
                self._student_recorder.recording())
            losses = self._student_losses(batch_inputs, batch_data_samples)
        labels = functools.cache(
            lambda: self._hard_labels(batch_data_samples))
        for term in self.terms:
            pairs = term.select_levels(student_feats[term.student_path],
                                       teacher_feats[term.teacher_path])
            losses.update(
                self._term_losses(term, pairs, batch_data_samples, labels))
        return losses

    def _term_losses(self, term: DistillTerm, pairs: dict,
                     data_samples: list, labels) -> Dict[str, Tensor]:
        """The losses of one term on this step's recorded features."""
        whole_term = self.distill_losses[term.log_stem] \
            if term.log_stem in self.distill_losses else None
        if whole_term is not None and takes_all_levels(whole_term):
            s_feats, t_feats = zip(*pairs.values())
            return {term.log_stem: call_term_loss(whole_term, s_feats,
                                                  t_feats, data_samples,
                                                  labels)}
        level_inputs = self._shared_level_inputs(pairs, data_samples)
        return {
            log_key: call_term_loss(self.distill_losses[log_key], s_feat,
                                    t_feat, data_samples, labels, extra)
            for (log_key, (s_feat, t_feat)), extra in zip(
                pairs.items(), level_inputs)
        }

    def _shared_level_inputs(self, pairs: dict,
                             data_samples: list) -> List[dict]:
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
        return build(data_samples,
                     [t_feat.shape[-2:] for _, t_feat in pairs.values()])

    @torch.no_grad()
    def _teacher_features(self, batch_inputs: Tensor,
                          data_samples: list) -> dict:
        """Run only the part of the teacher the terms need.

        Returns:
            dict[str, tuple[Tensor]]: Module path -> float32 levels.
        """
        autocast = teacher_autocast(batch_inputs.device.type,
                                    self.teacher_autocast)
        with autocast, self._teacher_recorder.recording() as teacher_feats:
            self._run_minimal_forward(
                self.teacher, self._teacher_paths,
                self._teacher_renorm(batch_inputs.float()), data_samples)
        return {
            path: tuple(feat.float() for feat in feats)
            for path, feats in teacher_feats.items()
        }

    # ---------------------------------------------- stopping distillation
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

        :meth:`loss` then returns the student's own losses only: the
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
                f'{type(self).__name__}: cannot stop distillation, the '
                f'student heads {heads} distil inside their own loss '
                '(TeacherLinkMixin) and have no switch to train without '
                'the teacher.')
        self._distill_stopped = True

    def __deepcopy__(self, memo: dict) -> 'BaseDistiller':
        """Deep-copy everything but the frozen teacher, which is shared.

        mmengine's ``EMAHook`` (``ExpMomentumEMA``) deep-copies the model
        to hold the averaged weights. The teacher is frozen and outside the
        module tree (so never averaged nor swapped by the EMA), and copying
        it would only double its memory: the copy shares it, with the
        recorder whose forward hooks sit on the teacher's modules.

        Args:
            memo (dict): ``copy.deepcopy``'s memo.

        Returns:
            BaseDistiller: The copy.
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
        :meth:`loss` is one of the student's own losses.

        Returns:
            list[str]: The keys.
        """
        keys = list(self.distill_losses.keys())
        for head in self._linked_heads:
            keys += head.distill_loss_keys()
        return keys


def _autocast_dtype(name: Optional[str]) -> Optional[torch.dtype]:
    """Map ``teacher_autocast`` to a dtype, refusing unknown names."""
    allowed = {None: None, 'bfloat16': torch.bfloat16,
               'float16': torch.float16}
    if name not in allowed:
        raise ValueError(f'teacher_autocast must be one of "bfloat16", '
                         f'"float16" or None, got {name!r}.')
    return allowed[name]
