# Copyright (c) mmkd_plugin contributors.
"""Turn a distillation checkpoint (DistillationDetector or
DistillationClassifier) into a plain student checkpoint."""
from collections import OrderedDict

import torch
from mmengine.runner.checkpoint import _load_checkpoint

from .checkpoint_keys import split_distillation_state


def student_state_dict(checkpoint: dict) -> OrderedDict:
    """Return the student's weights, keys relative to the student.

    Args:
        checkpoint (dict): A loaded checkpoint of a DistillationDetector or
            DistillationClassifier (with or without a ``state_dict``
            wrapper).

    Returns:
        OrderedDict: ``student.*`` entries with the prefix removed.
    """
    parts = split_distillation_state(checkpoint.get('state_dict', checkpoint))
    if not parts.is_distillation:
        raise ValueError('no "student.*" weights in this checkpoint: it is '
                         'not a DistillationDetector or '
                         'DistillationClassifier checkpoint.')
    return parts.student


def export_student(src: str, dst: str) -> int:
    """Write the student of checkpoint ``src`` as a plain checkpoint.

    Args:
        src (str): Distillation checkpoint path or URL.
        dst (str): Output path; it loads strictly into the student's own
            (mmdet or mmpretrain) config.

    Returns:
        int: Number of tensors written.
    """
    checkpoint = _load_checkpoint(src, map_location='cpu')
    state = student_state_dict(checkpoint)
    meta = dict(checkpoint.get('meta', {}))
    meta['exported_from'] = src
    torch.save({'state_dict': state, 'meta': meta}, dst)
    return len(state)
