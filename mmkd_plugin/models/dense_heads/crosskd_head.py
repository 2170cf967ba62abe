# Copyright (c) mmkd_plugin contributors.
"""CrossKD: cross-head knowledge distillation for dense detectors.

Wang et al., "CrossKD: Cross-Head Knowledge Distillation for Object
Detection", CVPR 2024. https://arxiv.org/abs/2306.11369

Design
------
CrossKD feeds an intermediate feature of the student's head into the rest
of the frozen teacher's head and distils the resulting "cross-head"
predictions towards the teacher's own. Its losses are weighted and
normalised by the student's assignment (label weights, positive counts),
which exists only inside the head's loss; so CrossKD is a head mixin,
:class:`CrossKDHeadMixin` (a :class:`TeacherLinkMixin`), and one thin
registered class per supported head: :class:`CrossKDGFLHead`,
:class:`CrossKDATSSHead`, :class:`CrossKDFCOSHead` and
:class:`CrossKDRetinaHead`. The mixin holds the whole mechanism once; what
differs between the heads (predictor convs, ``Scale``, box activation,
decoding, targets, box KD) is a table entry in :mod:`.crosskd_layouts`.

- Inference is unchanged: the classes inherit ``forward``/``predict`` of
  the mmdet head and have its parameters (plus, only when the head widths
  differ, two 1x1 adapter convs that inference never uses), so a student
  checkpoint loads into the plain mmdet head.
- The head lives in a :class:`DistillationDetector`, which links it to the
  teacher at build time (where the layouts of both heads are checked) and
  hands it the teacher's neck features in each step. The detector's
  ``distill`` terms (e.g. PKD on the FPN) work alongside, in one config.
- Only the training ``loss`` differs. It runs the student's towers by hand
  (the same computation as ``forward``), keeping in each tower (cls, reg)
  the output of the ``idx``-th stacked conv before its activation
  (``idx = reused_teacher_head_idx``, counted from 1; 0 = the FPN feature).
  The head's own ``loss_by_feat`` gives the detection losses; the
  assignment it computes is kept by :meth:`get_targets` (an override that
  records its result) so the KD terms use the same assignment without a
  second one. Then, per level and tower:

  1. The teacher's head runs on the teacher's neck features (no gradient),
     keeping its own hold at the same point and its predictions.
  2. ``h = align_scale(student hold, teacher hold)`` (per-channel
     standardisation to the teacher's statistics, see
     :func:`~mmkd_plugin.models.utils.align_scale`); if the widths differ,
     a trainable 1x1 conv first maps the student hold to the teacher's
     width (student -> teacher; ``crosskd_adapters.cls`` / ``.reg``).
  3. The teacher's activation (ReLU) if ``idx != 0``, the teacher's
     remaining tower convs ``idx .. stacked_convs - 1`` and its predictors
     (its ``Scale`` per level, FCOS's box activation) give the cross-head
     predictions. Teacher parameters never get gradients (frozen,
     ``requires_grad=False``), but gradients flow through them into the
     student's first ``idx`` tower convs, neck and backbone. The student's
     later convs and predictors only see its detection losses.

Losses (all levels at once; the log keys sum over levels):

- ``loss_crosskd_cls``: :class:`QualityFocalKDLoss` (beta 1) between the
  cross-head and teacher class logits, per location and class, times the
  student assigner's label weights (FCOS: none), / avg_factor: GFL and ATSS
  the positives summed over images (each image at least 1, as mmdet
  counts) averaged over processes; RetinaNet the same count on this
  process; FCOS the positives' centerness targets summed, averaged over
  processes, at least 1e-6 (so a batch without any object multiplies
  FCOS's KD terms by 1e6, as the authors' normaliser does). Weight 1
  (FCOS 0.4).
- ``loss_crosskd_bbox``: GFL: for each side the KL between the teacher's and
  cross-head's bin distributions summed over the bins (T = 1,
  :class:`LDLoss` with ``bin_reduction='sum'``, divisor 4), weighted by
  r = sigmoid(max teacher class logit), 0 where the label weight is 0,
  divided by the sum of r over all levels (this process); weight 4.
  RetinaNet and ATSS: GIoU loss between the boxes decoded (teacher's coder,
  the student's anchors) from the teacher's and the cross head's deltas,
  weighted by r times the label weights, / the cls avg_factor; weight 1.
  FCOS: IoU loss (-log IoU) on boxes decoded from the points, weighted by r,
  / FCOS's avg_factor; weight 0.75.
- ``loss_crosskd_centerness`` (ATSS): BCE-with-logits between cross-head
  centerness and the sigmoid of the teacher's, on the student's positives,
  / the cls avg_factor; weight 1.

Teacher and student heads must have the same family, classes, stacked
convs, strides and priors (and GFL ``reg_max``): the teacher's layers read
the student's features and predictions are compared location by location.
A mismatch is a ValueError naming both heads, raised when the detector is
built.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.models.dense_heads import ATSSHead, FCOSHead, GFLHead, RetinaHead
from mmdet.structures import SampleList
from torch import Tensor

from ..losses.ld_loss import LDLoss
from ..utils import TeacherLinkMixin, align_scale, teacher_autocast
from .crosskd_layouts import at_least_float32, layout_of
from .level_layout import flatten_levels
from .ld_gfl_head import _prior_settings

TOWERS = ('cls', 'reg')
Holds = List[Tuple[Tensor, Tensor]]  # per level: (cls hold, reg hold)


def run_tower_holding(convs: nn.ModuleList, feat: Tensor,
                      idx: int) -> Tuple[Tensor, Tensor]:
    """Run a tower of ConvModules, keeping the ``idx``-th output before
    its activation (``idx`` 0: the input itself).

    Returns:
        tuple[Tensor, Tensor]: The tower's output and the hold.
    """
    hold = feat
    for number, conv in enumerate(convs, start=1):
        if number == idx:
            hold = conv(feat, activate=False)
            # clone: the activation may work in place.
            feat = conv.activate(hold.clone()) if conv.with_activation \
                else hold
        else:
            feat = conv(feat)
    return feat, hold


def run_tower_after(convs: nn.ModuleList, hold: Tensor, idx: int) -> Tensor:
    """Finish a tower from a hold at ``idx``: the ``idx``-th conv's
    activation, then the convs after it."""
    feat = hold
    if idx > 0 and convs[idx - 1].with_activation:
        feat = convs[idx - 1].activate(feat)
    for conv in convs[idx:]:
        feat = conv(feat)
    return feat


def _hold_channels(head: nn.Module, idx: int) -> int:
    return head.in_channels if idx == 0 else head.cls_convs[idx -
                                                            1].out_channels


def _prior_layout(generator) -> dict:
    """What makes two prior generators place the same anchors or points."""
    return dict(_prior_settings(generator),
                offset=getattr(generator, 'offset', None))


class CrossKDHeadMixin(TeacherLinkMixin):
    """Cross-head KD for a dense head (see the module doc).

    Mix in before a GFL, ATSS, FCOS or RetinaNet head class.

    Args:
        reused_teacher_head_idx (int, optional): Number of the student's
            stacked tower convs before the hold point (0 = the FPN
            feature). Defaults to the family's: GFL, ATSS, RetinaNet 3;
            FCOS 2.
        loss_crosskd_cls (dict, optional): Classification KD loss.
            Defaults to ``QualityFocalKDLoss(beta=1)``, weight 1 (FCOS 0.4).
        loss_crosskd_bbox (dict, optional): Box KD loss. Defaults: GFL
            ``LDLoss(temperature=1, loss_weight=4, normalize='constant',
            divisor=4, bin_reduction='sum')``; ATSS, RetinaNet
            ``GIoUKDLoss`` weight 1 (mmdet's ``GIoULoss`` gives the same
            up to its eps on the normaliser, but reads the weights back to
            the host); FCOS ``IoULoss`` weight 0.75.
        loss_crosskd_centerness (dict, optional): ATSS only: centerness KD
            loss, called with the teacher's centerness logits. Defaults to
            ``QualityFocalKDLoss(beta=0)``: BCE-with-logits to the
            teacher's sigmoid, weight 1.
        **kwargs: Arguments of the mmdet head.
    """

    _crosskd_targets: Optional[list] = None

    def __init__(self,
                 *args,
                 reused_teacher_head_idx: Optional[int] = None,
                 loss_crosskd_cls: Optional[dict] = None,
                 loss_crosskd_bbox: Optional[dict] = None,
                 loss_crosskd_centerness: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        layout = layout_of(self)
        if layout is None:
            raise ValueError(f'{type(self).__name__}: CrossKD supports GFL, '
                             'ATSS, FCOS and RetinaNet heads.')
        self._crosskd_layout = layout
        idx = layout.default_idx if reused_teacher_head_idx is None \
            else reused_teacher_head_idx
        if not 0 <= idx <= self.stacked_convs:
            raise ValueError(
                f'{type(self).__name__}: reused_teacher_head_idx must lie in '
                f'[0, stacked_convs={self.stacked_convs}], got {idx}.')
        self.reused_teacher_head_idx = idx
        given = dict(loss_crosskd_cls=loss_crosskd_cls,
                     loss_crosskd_bbox=loss_crosskd_bbox,
                     loss_crosskd_centerness=loss_crosskd_centerness)
        for name, default in layout.default_losses.items():
            cfg = given[name] if given[name] is not None else default
            setattr(self, name, MODELS.build(cfg) if cfg else None)
        if loss_crosskd_centerness is not None and \
                layout.default_losses['loss_crosskd_centerness'] is None:
            raise ValueError(f'{type(self).__name__}: loss_crosskd_centerness'
                             f' is for ATSS heads; a {layout.name} head '
                             'has no centerness KD.')
        if isinstance(self, GFLHead) and not (
                isinstance(self.loss_crosskd_bbox, LDLoss)
                and self.loss_crosskd_bbox.normalize == 'constant'):
            raise ValueError(
                f'{type(self).__name__}: loss_crosskd_bbox must be an LDLoss '
                "with normalize='constant' (the head normalises by the sum "
                'of the teacher scores itself).')
        self.crosskd_adapters = nn.ModuleDict()

    # ------------------------------------------------------------ teacher
    def distill_loss_keys(self) -> List[str]:
        """list[str]: ``loss_crosskd_cls``, ``loss_crosskd_bbox`` and, for
        ATSS, ``loss_crosskd_centerness``."""
        return [
            name for name in ('loss_crosskd_cls', 'loss_crosskd_bbox',
                              'loss_crosskd_centerness')
            if getattr(self, name) is not None
        ]

    def link_teacher(self, teacher: nn.Module) -> None:
        """Check the teacher's head against this one; add 1x1 adapters
        (student width -> teacher width) if the hold widths differ.

        Raises:
            ValueError: Naming both heads, if the teacher's head is of
                another family or differs in classes, stacked convs,
                strides, priors or ``reg_max``.
        """
        t_head = getattr(teacher, 'bbox_head', None)
        layout = self._crosskd_layout
        heads = (f'student head {type(self).__name__}, teacher head '
                 f'{type(t_head).__name__}')
        if not isinstance(t_head, layout.family):
            raise ValueError(
                f'CrossKD ({heads}): the teacher needs a {layout.name} head '
                f'({layout.family.__name__} or a subclass).')
        problems = []
        for what, s_value, t_value in self._layout_facts(t_head):
            if s_value != t_value:
                problems.append(f'{what}: student {s_value}, teacher '
                                f'{t_value}')
        if problems:
            raise ValueError(
                f'CrossKD ({heads}): the teacher\'s head layers read the '
                'student\'s features and the predictions are compared per '
                'location, so the heads must match: ' + '; '.join(problems) +
                '.')
        s_width = _hold_channels(self, self.reused_teacher_head_idx)
        t_width = _hold_channels(t_head, self.reused_teacher_head_idx)
        if s_width != t_width:
            for tower in TOWERS:
                self.crosskd_adapters[tower] = nn.Conv2d(
                    s_width, t_width, kernel_size=1)
        super().link_teacher(teacher)

    def _layout_facts(self, t_head: nn.Module) -> list:
        """(what, student value, teacher value) that must be equal."""
        facts = [
            ('num_classes', self.num_classes, t_head.num_classes),
            ('cls_out_channels', self.cls_out_channels,
             t_head.cls_out_channels),
            ('stacked_convs', (len(self.cls_convs), len(self.reg_convs)),
             (len(t_head.cls_convs), len(t_head.reg_convs))),
        ]
        s_priors = _prior_layout(self.prior_generator)
        t_priors = _prior_layout(t_head.prior_generator)
        facts += [(key, value, t_priors[key])
                  for key, value in s_priors.items()]
        if isinstance(self, GFLHead):
            facts.append(('reg_max', self.reg_max, t_head.reg_max))
        return facts

    # ------------------------------------------------------------ forward
    def get_targets(self, priors: list, *args, **kwargs):
        """The head's ``get_targets``; inside :meth:`loss` its result and
        its priors (the first argument of every family's ``get_targets``:
        anchors per image and level, the same for every image, or FCOS's
        points per level) are also kept for the KD terms, so that they are
        not generated twice."""
        if self._crosskd_targets is None:
            return super().get_targets(priors, *args, **kwargs)
        # Read before the call: ATSS and GFL replace each image's list of
        # levels by their concatenation.
        levels = list(priors if isinstance(priors[0], Tensor) else priors[0])
        targets = super().get_targets(priors, *args, **kwargs)
        self._crosskd_targets.append((targets, levels))
        return targets

    def _head_pass(self, head: nn.Module, feats: Sequence[Tensor]
                   ) -> Tuple[Tuple[List[Tensor], ...], Holds]:
        """``head``'s training-mode outputs on ``feats`` and its holds."""
        idx = self.reused_teacher_head_idx
        per_level, holds = [], []
        for level, feat in enumerate(feats):
            cls_feat, cls_hold = run_tower_holding(head.cls_convs, feat, idx)
            reg_feat, reg_hold = run_tower_holding(head.reg_convs, feat, idx)
            per_level.append(
                self._crosskd_layout.predict(head, cls_feat, reg_feat, level))
            holds.append((cls_hold, reg_hold))
        return tuple(map(list, zip(*per_level))), holds

    def forward_holding(
            self, feats: Sequence[Tensor]
    ) -> Tuple[Tuple[List[Tensor], ...], Holds]:
        """:meth:`forward` computed conv by conv, also returning each
        level's (cls, reg) hold before its activation.

        Args:
            feats (Sequence[Tensor]): FPN features.

        Returns:
            tuple: The outputs of :meth:`forward` (training mode) and the
            holds.
        """
        return self._head_pass(self, feats)

    def loss(self, x: Tuple[Tensor], batch_data_samples: SampleList) -> dict:
        """Detection losses of the head plus the CrossKD losses.

        Args:
            x (tuple[Tensor]): Student FPN features.
            batch_data_samples (list[DetDataSample]): Batch annotations.

        Returns:
            dict[str, Tensor]: The head's losses and those of
            :meth:`distill_loss_keys`.
        """
        outs, holds = self.forward_holding(x)
        gt_instances, gt_ignore, img_metas = unpack_gt_instances(
            batch_data_samples)
        self._crosskd_targets = []
        try:
            losses = self.loss_by_feat(*outs, gt_instances, img_metas,
                                       gt_ignore)
            captured = self._crosskd_targets
        finally:
            self._crosskd_targets = None
        if len(captured) != 1:
            raise RuntimeError(
                f'{type(self).__name__}: loss_by_feat called get_targets '
                f'{len(captured)} times; CrossKD expects once.')
        targets, priors = captured[0]
        losses.update(self.crosskd_losses(holds, targets, outs[0], priors))
        return losses

    # ------------------------------------------------------------ CrossKD
    def _teacher_pass(self, cls_scores: List[Tensor]):
        """The teacher head's outputs and holds on the teacher's neck
        features, float32, checked against the student's levels."""
        t_head = self.teacher.bbox_head
        with self.teacher_forward_context(cls_scores[0].device.type):
            t_outs, t_holds = self._head_pass(t_head, self.teacher_feats)
        if len(t_outs[0]) != len(cls_scores):
            raise ValueError(f'{type(self).__name__}: the student has '
                             f'{len(cls_scores)} levels, the teacher '
                             f'{len(t_outs[0])}.')
        for level, (s_map, t_map) in enumerate(zip(cls_scores, t_outs[0])):
            if s_map.shape != t_map.shape:
                raise ValueError(
                    f'{type(self).__name__}: level {level}: student map '
                    f'{tuple(s_map.shape)} and teacher map '
                    f'{tuple(t_map.shape)} differ.')
        t_outs = tuple([at_least_float32(m) for m in maps]
                       for maps in t_outs)
        t_holds = [tuple(at_least_float32(h) for h in pair)
                   for pair in t_holds]
        return t_outs, t_holds

    def cross_head_pass(self, student_holds: Holds,
                        teacher_holds: Holds) -> Tuple[List[Tensor], ...]:
        """The teacher's remaining head layers on the aligned student
        holds, with gradients into the student (not into the teacher).

        Returns:
            tuple[list[Tensor]]: The cross-head outputs, like
            :meth:`forward`'s, in float32 (float64 for float64 inputs).
        """
        t_head = self.teacher.bbox_head
        idx = self.reused_teacher_head_idx
        device_type = student_holds[0][0].device.type
        per_level = []
        for level, (s_pair, t_pair) in enumerate(
                zip(student_holds, teacher_holds)):
            with torch.autocast(device_type, enabled=False):
                aligned = [
                    self._aligned(tower, s_hold, t_hold)
                    for tower, s_hold, t_hold in zip(TOWERS, s_pair, t_pair)
                ]
            with teacher_autocast(device_type, self._teacher_autocast):
                cls_feat = run_tower_after(t_head.cls_convs, aligned[0], idx)
                reg_feat = run_tower_after(t_head.reg_convs, aligned[1], idx)
                preds = self._crosskd_layout.predict(t_head, cls_feat,
                                                     reg_feat, level)
            per_level.append([at_least_float32(p) for p in preds])
        return tuple(map(list, zip(*per_level)))

    def _aligned(self, tower: str, s_hold: Tensor, t_hold: Tensor) -> Tensor:
        s_hold = at_least_float32(s_hold)
        if tower in self.crosskd_adapters:
            s_hold = self.crosskd_adapters[tower](s_hold)
        return align_scale(s_hold, t_hold)

    def crosskd_losses(
            self,
            student_holds: Holds,
            targets: tuple,
            cls_scores: List[Tensor],
            priors: Optional[List[Tensor]] = None) -> Dict[str, Tensor]:
        """The CrossKD losses of one step (see the module doc).

        Args:
            student_holds (list[tuple[Tensor, Tensor]]): Per level, the
                student's (cls, reg) holds.
            targets (tuple): This step's ``get_targets`` output.
            cls_scores (list[Tensor]): Student class maps (for the level
                sizes).
            priors (list[Tensor], optional): The priors of one image per
                level, those of the assignment; generated from the level
                sizes when not given.

        Returns:
            dict[str, Tensor]: The losses of :meth:`distill_loss_keys`.
        """
        t_outs, t_holds = self._teacher_pass(cls_scores)
        x_outs = self.cross_head_pass(student_holds, t_holds)
        assignment = self._crosskd_layout.assignment(self, targets,
                                                     cls_scores[0].shape[0])
        num_priors = self.prior_generator.num_base_priors[0]

        def flat(maps):
            return flatten_levels(maps, maps[0].shape[1] // num_priors)

        t_flat = [flat(maps) for maps in t_outs]
        x_flat = [flat(maps) for maps in x_outs]
        losses = dict(loss_crosskd_cls=self.loss_crosskd_cls(
            x_flat[0], t_flat[0], weight=assignment.label_weights,
            avg_factor=assignment.avg_factor))
        losses.update(
            self._crosskd_layout.box_kd(self, self.teacher.bbox_head,
                                        t_flat, x_flat, assignment,
                                        self._flat_priors(cls_scores, priors)))
        return losses

    def _flat_priors(self, cls_scores: List[Tensor],
                     priors: Optional[List[Tensor]]) -> Tensor:
        """Every location's prior (anchor or point), in flattened order,
        from one image's ``priors`` per level, generated if None."""
        if priors is None:
            priors = self.prior_generator.grid_priors(
                [m.shape[-2:] for m in cls_scores],
                dtype=torch.promote_types(cls_scores[0].dtype, torch.float32),
                device=cls_scores[0].device)
        return torch.cat(priors).repeat(cls_scores[0].shape[0], 1)


@MODELS.register_module()
class CrossKDGFLHead(CrossKDHeadMixin, GFLHead):
    """GFL head trained with CrossKD (see :mod:`.crosskd_head`)."""


@MODELS.register_module()
class CrossKDATSSHead(CrossKDHeadMixin, ATSSHead):
    """ATSS head trained with CrossKD (see :mod:`.crosskd_head`)."""


@MODELS.register_module()
class CrossKDFCOSHead(CrossKDHeadMixin, FCOSHead):
    """FCOS head trained with CrossKD (see :mod:`.crosskd_head`)."""


@MODELS.register_module()
class CrossKDRetinaHead(CrossKDHeadMixin, RetinaHead):
    """RetinaNet head trained with CrossKD (see :mod:`.crosskd_head`)."""


__all__ = [
    'CrossKDHeadMixin', 'CrossKDGFLHead', 'CrossKDATSSHead',
    'CrossKDFCOSHead', 'CrossKDRetinaHead'
]
