# Copyright (c) mmkd_plugin contributors.
"""The benchmark's proxy: the runs of the chosen methods.

The dataset variants, families and methods of each task are in
:mod:`.tasks`. Each family has a teacher and a student baseline that train on
the same data with the same schedule; a distilled student uses its
family's student and teacher. A method whose config starts student modules
from the teacher (``student_init_from_teacher``) also gets an init-only
control: the baseline with the same modules loaded from the teacher's
checkpoint and no distillation loss.
"""
import os.path as osp
from typing import Dict, List, Optional

from .runs import RunSpec
from .tasks import DETECTION, DataVariant, task_of_methods

__all__ = ['FAMILIES', 'METHODS', 'DataVariant', 'run_name', 'plan_runs']

# The detection task's families and methods (tools/benchmark.py's, and the
# names this module always had); every task's are in tasks.TASKS.
FAMILIES = DETECTION.families
METHODS = DETECTION.methods


def run_name(base: str, seed: int) -> str:
    """``base`` for seed 0, else ``base_seed<k>``."""
    return base if seed == 0 else f'{base}_seed{seed}'


def plan_runs(methods: List[str], seeds: List[int], iters: int,
              config_dir: str, convergence_seeds: Optional[List[int]] = None,
              controls: bool = True,
              options: Optional[Dict] = None,
              distilled_options: Optional[Dict] = None,
              tag: str = '') -> List[RunSpec]:
    """Every run the chosen methods need, teachers first.

    Per family: the teacher (seed 0, ``iters``), the baseline (each seed),
    the baseline at ``2 * iters`` (each of ``convergence_seeds``); per
    method, the distilled student (each seed) and, with ``controls``,
    the init-only control of a method that initialises from the teacher.

    Args:
        methods (list[str]): Methods of one task (``Task.methods``).
        seeds (list[int]): Student training seeds.
        iters (int): Training iterations of teachers and students.
        config_dir (str): Folder of the configs (the repository's
            configs/; a task's configs are in its ``config_dir`` under it).
        convergence_seeds (list[int], optional): Seeds of the 2x-schedule
            baselines; None means the first seed, ``[]`` none.
        controls (bool): Add the init-only controls.
        options (dict, optional): Config options for every run.
        distilled_options (dict, optional): Config options for the
            distilled students only (keys of the method's config), e.g. a
            loss weight to compare on the holdout split.
        tag (str): Names the distilled students' row ``<method>_<tag>``,
            so that runs with ``distilled_options`` are cached beside the
            method's own runs instead of replacing them.

    Returns:
        list[RunSpec]: The runs.

    Raises:
        ValueError: If the methods belong to more than one task.
    """
    task = task_of_methods(methods)
    task_dir = osp.join(config_dir, task.config_dir)
    options = options or {}
    if convergence_seeds is None:
        convergence_seeds = seeds[:1]
    families = [f for f in task.families
                if any(task.methods[m]['family'] == f for m in methods)]
    specs = []

    def add(group: str, role: str, family: str, config: str, seed: int,
            run_iters: int, method_options: Optional[Dict] = None,
            **kwargs) -> None:
        if not osp.isfile(osp.join(task_dir, config)):
            raise FileNotFoundError(f'{group}: no config {config} in '
                                    f'{task_dir}')
        specs.append(RunSpec(run_name(group, seed), osp.join(task_dir,
                                                             config),
                             seed, run_iters,
                             options=dict(options, **(method_options or {})),
                             group=group, role=role, family=family,
                             task=task.name, **kwargs))

    for family in families:
        spec = task.families[family]
        teacher = f'{family}_teacher'
        add(teacher, 'teacher', family, spec['teacher'], 0, iters)
        for seed in seeds:
            add(f'{family}_baseline', 'baseline', family, spec['baseline'],
                seed, iters)
            if seed in convergence_seeds:
                add(f'{family}_baseline_2x', 'baseline_2x', family,
                    spec['baseline'], seed, 2 * iters)
        for method in methods:
            method_spec = task.methods[method]
            if method_spec['family'] != family:
                continue
            modules = tuple(method_spec.get('init_from_teacher', ()))
            for seed in seeds:
                add(f'{method}_{tag}' if tag else method, 'distilled',
                    family, method_spec['config'], seed, iters,
                    teacher=teacher, method=method, method_options=dict(
                        method_spec.get('options') or {},
                        **(distilled_options or {})))
                if controls and modules:
                    add(f'{method}_init_only', 'control', family,
                        spec['baseline'], seed, iters, teacher=teacher,
                        init_from_teacher=modules, method=method)
    return specs
