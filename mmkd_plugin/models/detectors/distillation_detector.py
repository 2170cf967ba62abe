# Copyright (c) mmkd_plugin contributors.
"""A detector that trains an mmdet student against a frozen teacher."""
from typing import Tuple

import torch.nn as nn
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, OptSampleList, SampleList
from torch import Tensor

from ..distillers import BaseDistiller


@MODELS.register_module()
class DistillationDetector(BaseDistiller, BaseDetector):
    """Wraps an mmdet student detector and a frozen teacher detector.

    The student trains with its own detection losses plus the distillation
    losses listed in ``distill``, which compare the outputs of student and
    teacher modules (feature losses: CWD, FGD, MGD, PKD, FitNet). Logit
    distillation on detectors runs in distilling heads (LD, BCKD, CrossKD,
    DKD/KD on RoIs), linked to the teacher at build time. Prediction uses
    the student alone. Arguments, and what happens to the teacher: see
    :class:`BaseDistiller`.
    """

    registry = MODELS
    source_tags = {'neck': 'fpn', 'backbone': 'backbone'}

    def _probe_data_samples(self, size: Tuple[int, int]) -> SampleList:
        """One detection sample describing the blank probe image."""
        return [DetDataSample(metainfo=dict(
            img_shape=size, ori_shape=size, pad_shape=size,
            batch_input_shape=size, scale_factor=(1.0, 1.0)))]

    def _run_head_forward(self, model: nn.Module, inputs: Tensor,
                          data_samples: SampleList) -> None:
        """The detector's head forward (``_forward``), never its losses or
        assigners."""
        model._forward(inputs, data_samples)

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

    # mmdet's training hooks reach into the model they train; this gives
    # them the student where they expect a detector.
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
