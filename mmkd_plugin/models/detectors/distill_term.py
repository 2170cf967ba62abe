# Copyright (c) mmkd_plugin contributors.
"""One entry of ``DistillationDetector.distill``: what is compared to what."""
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from torch import Tensor

TERM_KEYS = {'student', 'teacher', 'loss', 'levels', 'name'}


@dataclass(frozen=True)
class DistillTerm:
    """A student module output distilled from a teacher module output.

    Attributes:
        student_path (str): Dotted module path in the student.
        teacher_path (str): Dotted module path in the teacher.
        loss_cfg (dict): Config of the loss built for every level.
        levels (tuple[int], optional): Indices into the output tuples;
            None means all levels.
        log_stem (str): Start of the log keys, e.g. ``'loss_cwd_fpn'``.
    """
    student_path: str
    teacher_path: str
    loss_cfg: dict
    levels: Optional[Tuple[int, ...]]
    log_stem: str

    def select_levels(
        self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]
    ) -> Dict[str, Tuple[Tensor, Tensor]]:
        """Pair the selected levels and name them by their log keys.

        Args:
            student_feats (Sequence[Tensor]): Recorded student outputs.
            teacher_feats (Sequence[Tensor]): Recorded teacher outputs.

        Returns:
            dict[str, tuple[Tensor, Tensor]]: Log key -> (student, teacher).
        """
        if self.levels is None:
            if len(student_feats) != len(teacher_feats):
                raise ValueError(
                    f'distill {self.log_stem}: student "{self.student_path}" '
                    f'gives {len(student_feats)} levels '
                    f'{_shapes(student_feats)}, teacher "{self.teacher_path}"'
                    f' gives {len(teacher_feats)} {_shapes(teacher_feats)}; '
                    'choose matching ones with "levels".')
            levels = range(len(student_feats))
        else:
            levels = self.levels
            available = min(len(student_feats), len(teacher_feats))
            if max(levels) >= available or min(levels) < -available:
                raise ValueError(
                    f'distill {self.log_stem}: levels {list(levels)} out of '
                    f'range; student "{self.student_path}" gives '
                    f'{_shapes(student_feats)}, teacher "{self.teacher_path}"'
                    f' gives {_shapes(teacher_feats)}.')
        single = len(student_feats) == 1 and self.levels is None
        return {
            self.log_stem + ('' if single else str(level)):
            (student_feats[level], teacher_feats[level])
            for level in levels
        }


def _shapes(feats: Sequence[Tensor]) -> List[tuple]:
    return [tuple(f.shape) for f in feats]


def _default_name(loss_type: str) -> str:
    """``'CWDLoss'`` -> ``'cwd'``, ``'FitNetLoss'`` -> ``'fitnet'``."""
    return re.sub(r'Loss$', '', loss_type.split('.')[-1]).lower()


def parse_distill_terms(distill: Sequence[Mapping],
                        source_tags: Mapping[str, str]) -> List[DistillTerm]:
    """Validate the ``distill`` list of a config and build its terms.

    Args:
        distill (Sequence[Mapping]): Entries with ``student``, ``loss`` and
            optional ``teacher``, ``levels``, ``name``.
        source_tags (Mapping[str, str]): Short log tags of module paths,
            e.g. ``{'neck': 'fpn'}``; other paths log with dots as ``_``.

    Returns:
        list[DistillTerm]: One term per entry.
    """
    if not distill:
        raise ValueError('DistillationDetector: "distill" is empty; give at '
                         'least one term such as dict(student="neck", '
                         'loss=dict(type="CWDLoss")).')
    terms = []
    for index, entry in enumerate(distill):
        unknown = set(entry) - TERM_KEYS
        if unknown or 'student' not in entry or 'loss' not in entry:
            raise ValueError(
                f'distill[{index}] = {dict(entry)}: needs "student" and '
                f'"loss", may have {sorted(TERM_KEYS)}; unknown keys: '
                f'{sorted(unknown)}.')
        loss_cfg = dict(entry['loss'])
        if 'type' not in loss_cfg:
            raise ValueError(f'distill[{index}]: the loss needs a "type".')
        student_path = entry['student']
        name = entry.get('name') or _default_name(str(loss_cfg['type']))
        tag = source_tags.get(student_path, student_path.replace('.', '_'))
        levels = entry.get('levels')
        terms.append(
            DistillTerm(
                student_path=student_path,
                teacher_path=entry.get('teacher', student_path),
                loss_cfg=loss_cfg,
                levels=None if levels is None else tuple(levels),
                log_stem=f'loss_{name}_{tag}'))
    return terms
