# Copyright (c) mmkd_plugin contributors.
"""One entry of a distiller's ``distill`` list: what is compared to what."""
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from torch import Tensor

TERM_KEYS = {'student', 'teacher', 'loss', 'levels', 'teacher_levels', 'name'}


@dataclass(frozen=True)
class DistillTerm:
    """A student module output distilled from a teacher module output.

    Attributes:
        student_path (str): Dotted module path in the student.
        teacher_path (str): Dotted module path in the teacher.
        loss_cfg (dict): Config of the loss built for every level.
        levels (tuple[int], optional): Indices into the output tuples;
            None means all levels.
        teacher_levels (tuple[int], optional): Indices into the teacher's
            output when they differ from ``levels``.
        log_stem (str): Start of the log keys, e.g. ``'loss_cwd_fpn'``.
    """
    student_path: str
    teacher_path: str
    loss_cfg: dict
    levels: Optional[Tuple[int, ...]]
    teacher_levels: Optional[Tuple[int, ...]]
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
        student_levels = self._indices(self.levels, student_feats, 'student')
        teacher_levels = self._indices(self.teacher_levels or self.levels,
                                       teacher_feats, 'teacher')
        if len(student_levels) != len(teacher_levels):
            raise ValueError(
                f'distill {self.log_stem}: student "{self.student_path}" '
                f'gives {len(student_levels)} levels '
                f'{_shapes(student_feats)}, teacher "{self.teacher_path}" '
                f'gives {len(teacher_levels)} {_shapes(teacher_feats)}; '
                'choose matching ones with "levels" / "teacher_levels".')
        single = len(student_feats) == 1 and self.levels is None
        # 'loss_cwd_fpn' + '0'; a stem ending in a digit gets a separator.
        separator = '_' if self.log_stem[-1].isdigit() else ''
        return {
            self.log_stem + ('' if single else f'{separator}{s_level}'):
            (student_feats[s_level], teacher_feats[t_level])
            for s_level, t_level in zip(student_levels, teacher_levels)
        }

    def _indices(self, levels: Optional[Tuple[int, ...]],
                 feats: Sequence[Tensor], side: str) -> Sequence[int]:
        """Selected indices of one side, checked against its level count."""
        if levels is None:
            return range(len(feats))
        if any(not -len(feats) <= level < len(feats) for level in levels):
            raise ValueError(
                f'distill {self.log_stem}: {side} levels {list(levels)} out '
                f'of range; the {side} gives {_shapes(feats)}.')
        return levels


def _shapes(feats: Sequence[Tensor]) -> List[tuple]:
    return [tuple(f.shape) for f in feats]


def _default_name(loss_type: str) -> str:
    """``'CWDLoss'`` -> ``'cwd'``, ``'FitNetLoss'`` -> ``'fitnet'``."""
    return re.sub(r'Loss$', '', loss_type.split('.')[-1]).lower()


def parse_distill_terms(distill: Sequence[Mapping],
                        source_tags: Mapping[str, str],
                        allow_empty: bool = False) -> List[DistillTerm]:
    """Validate the ``distill`` list of a config and build its terms.

    Args:
        distill (Sequence[Mapping]): Entries with ``student``, ``loss`` and
            optional ``teacher``, ``levels``, ``name``.
        source_tags (Mapping[str, str]): Short log tags of module paths,
            e.g. ``{'neck': 'fpn'}``; other paths log with dots as ``_``.
        allow_empty (bool): Accept an empty list (a student head distils).

    Returns:
        list[DistillTerm]: One term per entry.
    """
    if not distill and not allow_empty:
        raise ValueError('distill: the "distill" list is empty; give at '
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
        levels, teacher_levels = entry.get('levels'), entry.get(
            'teacher_levels')
        terms.append(
            DistillTerm(
                student_path=student_path,
                teacher_path=entry.get('teacher', student_path),
                loss_cfg=loss_cfg,
                levels=None if levels is None else tuple(levels),
                teacher_levels=None
                if teacher_levels is None else tuple(teacher_levels),
                log_stem=f'loss_{name}_{tag}'))
    return terms
