# Copyright (c) mmkd_plugin contributors.
"""The benchmark's proxy: a generated dataset variant and its runs.

Each detector family has a teacher and a student baseline that train on
the same data with the same schedule; a distilled student uses its
family's student and teacher. A method whose config starts student modules
from the teacher (``student_init_from_teacher``) also gets an init-only
control: the baseline with the same modules loaded from the teacher's
checkpoint and no distillation loss.
"""
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

from .runs import RunSpec

# Each family: teacher and student baseline configs (under configs/).
FAMILIES = {
    'retina': dict(teacher='retina_r18_digits.py',
                   baseline='retina_r18-w16_digits.py',
                   teacher_model='RetinaNet R18',
                   student_model='RetinaNet R18 x1/4 width'),
    'gfl': dict(teacher='gfl_r18_digits.py',
                baseline='gfl_r18-w16_digits.py',
                teacher_model='GFL R18',
                student_model='GFL R18 x1/4 width'),
    'faster-rcnn': dict(teacher='faster-rcnn_r18_digits.py',
                        baseline='faster-rcnn_r18-w16_digits.py',
                        teacher_model='Faster R-CNN R18',
                        student_model='Faster R-CNN R18 x1/4 width'),
}
# Each method: its family, its config, and the student modules its config
# initialises from the teacher (the init-only control loads the same).
METHODS = {
    'fgd': dict(family='retina', config='fgd_retina_r18_r18-w16_digits.py',
                init_from_teacher=('bbox_head', )),
    'cwd': dict(family='retina', config='cwd_retina_r18_r18-w16_digits.py'),
    'mgd': dict(family='retina', config='mgd_retina_r18_r18-w16_digits.py',
                init_from_teacher=('bbox_head', )),
    'pkd': dict(family='retina', config='pkd_retina_r18_r18-w16_digits.py'),
    'ld': dict(family='gfl', config='ld_gfl_r18_r18-w16_digits.py'),
    'bckd': dict(family='gfl', config='bckd_gfl_r18_r18-w16_digits.py'),
    'crosskd': dict(family='gfl',
                    config='crosskd_gfl_r18_r18-w16_digits.py'),
    'dkd': dict(family='faster-rcnn',
                config='dkd_faster-rcnn_r18_r18-w16_digits.py'),
    'kd': dict(family='faster-rcnn',
               config='kd_faster-rcnn_r18_r18-w16_digits.py'),
}


@dataclass(frozen=True)
class DataVariant:
    """Parameters of a generated digit-scenes dataset.

    Args:
        seed (int): Generator seed.
        image_size (int): Side of the square images in pixels.
        digits (tuple[int, int]): Fewest and most digits per image.
        digit_size (tuple[int, int], optional): Glyph height range in
            pixels; None scales 12-48 px at 128 px to ``image_size``.
        sizes (tuple[int, int, int]): Train, val and holdout images.
    """
    seed: int = 0
    image_size: int = 64
    digits: Tuple[int, int] = (2, 5)
    digit_size: Optional[Tuple[int, int]] = None
    sizes: Tuple[int, int, int] = (2000, 1000, 1000)

    def folder_name(self) -> str:
        """A folder name that says what the variant is."""
        name = (f'seed{self.seed}_{self.image_size}px_'
                f'{self.digits[0]}-{self.digits[1]}digits')
        if self.digit_size is not None:
            name += f'_{self.digit_size[0]}-{self.digit_size[1]}px'
        return name + '_' + '-'.join(map(str, self.sizes))

    def generate(self, root: str) -> Tuple[str, dict]:
        """Generate the variant under ``root`` (or reuse it).

        Returns:
            tuple[str, dict]: Its folder and its parameters (meta.json).
        """
        import json

        from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
        folder = osp.abspath(osp.join(root, self.folder_name()))
        paths = generate_digit_scenes(
            folder, num_train=self.sizes[0], num_val=self.sizes[1],
            num_holdout=self.sizes[2], image_size=self.image_size,
            min_digits=self.digits[0], max_digits=self.digits[1],
            digit_size_range=self.digit_size, seed=self.seed)
        with open(paths['meta'], encoding='utf-8') as file:
            return folder, json.load(file)

    def to_dict(self) -> dict:
        return asdict(self)


def run_name(base: str, seed: int) -> str:
    """``base`` for seed 0, else ``base_seed<k>``."""
    return base if seed == 0 else f'{base}_seed{seed}'


def plan_runs(methods: List[str], seeds: List[int], iters: int,
              config_dir: str, convergence_seeds: Optional[List[int]] = None,
              controls: bool = True,
              options: Optional[Dict] = None) -> List[RunSpec]:
    """Every run the chosen methods need, teachers first.

    Per family: the teacher (seed 0, ``iters``), the baseline (each seed),
    the baseline at ``2 * iters`` (each of ``convergence_seeds``); per
    method, the distilled student (each seed) and, with ``controls``,
    the init-only control of a method that initialises from the teacher.

    Args:
        methods (list[str]): Keys of :data:`METHODS`.
        seeds (list[int]): Student training seeds.
        iters (int): Training iterations of teachers and students.
        config_dir (str): Folder of the configs.
        convergence_seeds (list[int], optional): Seeds of the 2x-schedule
            baselines; None means the first seed, ``[]`` none.
        controls (bool): Add the init-only controls.
        options (dict, optional): Config options for every run.

    Returns:
        list[RunSpec]: The runs.
    """
    options = options or {}
    if convergence_seeds is None:
        convergence_seeds = seeds[:1]
    families = [f for f in FAMILIES
                if any(METHODS[m]['family'] == f for m in methods)]
    specs = []

    def add(group: str, role: str, family: str, config: str, seed: int,
            run_iters: int, **kwargs) -> None:
        if not osp.isfile(osp.join(config_dir, config)):
            raise FileNotFoundError(f'{group}: no config {config} in '
                                    f'{config_dir}')
        specs.append(RunSpec(run_name(group, seed), osp.join(config_dir,
                                                             config),
                             seed, run_iters, options=dict(options),
                             group=group, role=role, family=family,
                             **kwargs))

    for family in families:
        spec = FAMILIES[family]
        teacher = f'{family}_teacher'
        add(teacher, 'teacher', family, spec['teacher'], 0, iters)
        for seed in seeds:
            add(f'{family}_baseline', 'baseline', family, spec['baseline'],
                seed, iters)
            if seed in convergence_seeds:
                add(f'{family}_baseline_2x', 'baseline_2x', family,
                    spec['baseline'], seed, 2 * iters)
        for method in methods:
            method_spec = METHODS[method]
            if method_spec['family'] != family:
                continue
            modules = tuple(method_spec.get('init_from_teacher', ()))
            for seed in seeds:
                add(method, 'distilled', family, method_spec['config'], seed,
                    iters, teacher=teacher)
                if controls and modules:
                    add(f'{method}_init_only', 'control', family,
                        spec['baseline'], seed, iters, teacher=teacher,
                        init_from_teacher=modules)
    return specs
