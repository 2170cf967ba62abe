# Copyright (c) mmkd_plugin contributors.
"""Collect the benchmark's runs into table rows and write its reports."""
import argparse
import os.path as osp
from typing import Dict, List

from .report import Group
from .runs import RunSpec, write_json


def describe(spec: RunSpec) -> str:
    """What a row trains, in words."""
    family = spec.task_spec().families[spec.family]
    if spec.role == 'teacher':
        return family['teacher_model'] + ' (teacher)'
    student = family['student_model']
    if spec.role == 'baseline':
        return student + ' (baseline)'
    if spec.role == 'baseline_2x':
        return student + ' (baseline, 2x schedule)'
    if spec.role == 'control':
        return student + ' + ' + ', '.join(spec.init_from_teacher) + \
            ' from the teacher (init-only control)'
    method = spec.method or spec.group  # a spec not from plan_runs
    tag = spec.group[len(method) + 1:] \
        if spec.group.startswith(method + '_') else ''  # '<method>_<tag>'
    return f'{student} + {method.upper()}' + (f' ({tag})' if tag else '')


def groups_of(specs: List[RunSpec], results: Dict[str, dict],
              split: str) -> List[Group]:
    """The table rows, in run order, with each seed's score (its task's
    ``score_key``) on ``split``.

    A distilled row names its init-only control when the plan has one.
    """
    groups: Dict[str, Group] = {}
    for spec in specs:
        group = groups.get(spec.group)
        if group is None:
            control = f'{spec.method}_init_only'
            group = groups[spec.group] = Group(
                spec.group, spec.family, spec.role, describe(spec),
                control=control if spec.role == 'distilled' and any(
                    s.group == control for s in specs) else None)
        group.scores[spec.seed] = \
            results[spec.name]['metrics'][split][spec.task_spec().score_key]
    return list(groups.values())


def write_results(work_dir: str, args: argparse.Namespace,
                  variant, dataset_meta: dict,
                  specs: List[RunSpec], results: Dict[str, dict],
                  table: str, header: str, wall_seconds: float) -> None:
    """Write ``table.md`` (header + table) and ``results.json`` (settings,
    every run's metrics, wall time) into ``work_dir``.

    Args:
        variant: The dataset variant (``tasks.DataVariant`` or
            ``tasks.CropVariant``).
    """
    task = specs[0].task_spec()
    with open(osp.join(work_dir, 'table.md'), 'w', encoding='utf-8') as file:
        file.write(header + '\n\n' + table)
    runs = [dict(name=spec.name, group=spec.group, role=spec.role,
                 family=spec.family, config=spec.config, seed=spec.seed,
                 iters=spec.iters, teacher=spec.teacher, options=spec.options,
                 **{key: results[spec.name][key] for key in (
                     'metrics', 'seconds_per_iter', 'train_seconds',
                     'cached')}) for spec in specs]
    settings = dict(task=task.name, methods=args.methods, seeds=args.seeds,
                    iters=args.iters, splits=args.splits, jobs=args.jobs,
                    threads=args.threads,
                    variant=variant.to_dict(), dataset=dataset_meta,
                    method_configs={m: task.methods[m]['config']
                                    for m in args.methods})
    write_json(osp.join(work_dir, 'results.json'),
               dict(settings=settings, units=task.units,
                    runs=runs, wall_seconds=wall_seconds))
