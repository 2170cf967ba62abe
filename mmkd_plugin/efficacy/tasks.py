# Copyright (c) mmkd_plugin contributors.
"""What differs between the benchmark's tasks: detection and classification.

Every task shares the runner, the scheduler and the report; a :class:`Task`
holds the rest: its configs (families and methods), its generated dataset
(the variant and the environment variable its configs read the data root
from), how its configs are rescaled to a run's iterations, how its test
split is chosen, and its metric.

- ``detection``: the detector families on the digit scenes
  (configs/_base_/digit_scenes.py, mmdet ``CocoDataset``), COCO bbox mAP.
- ``classification``: the ResNet-18 family on the digit crops
  (configs/classification/_base_/digit_crops.py, mmpretrain
  ``CustomDataset``), top-1 accuracy of mmpretrain's ``Accuracy``.

Method names are unique across tasks, so a method names its task.
"""
import json
import os.path as osp
from dataclasses import asdict, dataclass, fields
from typing import Callable, Dict, Iterable, Optional, Tuple, Union

from mmkd_plugin.utils.digit_scenes.crops_writer import DEFAULT_CROP_SPLITS


# ---------------------------------------------------------- data variants
@dataclass(frozen=True)
class DataVariant:
    """Parameters of a generated digit-scenes dataset (detection).

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
        from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
        folder = osp.abspath(osp.join(root, self.folder_name()))
        paths = generate_digit_scenes(
            folder, num_train=self.sizes[0], num_val=self.sizes[1],
            num_holdout=self.sizes[2], image_size=self.image_size,
            min_digits=self.digits[0], max_digits=self.digits[1],
            digit_size_range=self.digit_size, seed=self.seed)
        return folder, _read_meta(paths['meta'])

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CropVariant:
    """Parameters of a generated digit-crops dataset (classification), at
    the generator's default difficulty (``CropDifficulty()``).

    Args:
        seed (int): Generator seed.
        image_size (int): Side of the square images in pixels.
        sizes (tuple[int, int, int]): Train, val and holdout images; the
            defaults are tools/make_digit_crops.py's.
    """
    seed: int = 0
    image_size: int = 32
    sizes: Tuple[int, int, int] = DEFAULT_CROP_SPLITS

    def folder_name(self) -> str:
        """A folder name that says what the variant is."""
        return (f'crops_seed{self.seed}_{self.image_size}px_' +
                '-'.join(map(str, self.sizes)))

    def generate(self, root: str) -> Tuple[str, dict]:
        """Generate the variant under ``root`` (or reuse it).

        Returns:
            tuple[str, dict]: Its folder and its parameters (meta.json).
        """
        from mmkd_plugin.utils.digit_scenes import generate_digit_crops
        folder = osp.abspath(osp.join(root, self.folder_name()))
        paths = generate_digit_crops(
            folder, num_train=self.sizes[0], num_val=self.sizes[1],
            num_holdout=self.sizes[2], image_size=self.image_size,
            seed=self.seed)
        return folder, _read_meta(paths['meta'])

    def to_dict(self) -> dict:
        return asdict(self)


def _read_meta(path: str) -> dict:
    with open(path, encoding='utf-8') as file:
        return json.load(file)


# Data loads in the run's own process: the benchmark already runs one
# training per core, and shutting loader workers down cost ~10 s per run
# here.
IN_PROCESS_LOADING = {
    'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
    'test_dataloader.num_workers': 0,
    'test_dataloader.persistent_workers': False,
}


# ------------------------------------------------------------ detection
def scenes_schedule_options(iters: int) -> Dict:
    """Config options that rescale the digit configs' schedule (10% linear
    warm-up, cosine to the end) to ``iters`` and save one final checkpoint;
    validation during training is off (the run is evaluated after it)."""
    warmup = max(1, iters // 10)
    return {
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': iters + 1,
        'param_scheduler.0.end': warmup,
        'param_scheduler.1.begin': warmup,
        'param_scheduler.1.end': iters,
        'param_scheduler.1.T_max': max(1, iters - warmup),
        'default_hooks.checkpoint.interval': iters,
        'default_hooks.logger.interval': min(50, iters),
        **IN_PROCESS_LOADING,
    }


def scenes_split_options(data_root: str, split: str) -> Dict:
    """Config options that point the test dataloader and evaluator at
    ``split`` of the dataset in ``data_root``."""
    return {
        'test_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.ann_file': f'annotations/{split}.json',
        'test_dataloader.dataset.data_prefix.img': f'{split}/',
        'test_evaluator.ann_file': osp.join(data_root, 'annotations',
                                            f'{split}.json'),
    }


COCO_METRIC_KEYS = {'mAP': 'coco/bbox_mAP', 'AP50': 'coco/bbox_mAP_50',
                    'AP75': 'coco/bbox_mAP_75'}


def coco_percent(metrics: Dict[str, float]) -> Dict[str, float]:
    """CocoMetric's results in percent; CocoMetric returns nothing when the
    model detected nothing (an untrained model), which counts as 0."""
    return {key: 100.0 * float(metrics.get(coco_key, 0.0))
            for key, coco_key in COCO_METRIC_KEYS.items()}


# -------------------------------------------------------- classification
def crops_schedule_options(iters: int) -> Dict:
    """Config options that turn the digit-crops configs' epoch schedule
    (one cosine from the optimizer's lr to 0 over ``max_epochs``) into
    ``iters`` iterations: mmengine's iteration-based loop (with an
    infinite sampler, as the detection configs) and the same cosine over the
    iterations, one final checkpoint ``iter_<iters>.pth``; validation
    during training is off (the run is evaluated after it).

    Epoch schedules inside losses (DKD's warm-up) do not advance under an
    iteration-based loop: they sit at epoch 1 (``current_epoch``).
    """
    return {
        'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop',
                          max_iters=iters, val_interval=iters + 1),
        'train_dataloader.sampler.type': 'InfiniteSampler',
        'param_scheduler': [dict(type='CosineAnnealingLR', by_epoch=False,
                                 begin=0, end=iters, T_max=iters)],
        'default_hooks.checkpoint.by_epoch': False,
        'default_hooks.checkpoint.interval': iters,
        'default_hooks.logger.interval': min(50, iters),
        'log_processor.by_epoch': False,
        **IN_PROCESS_LOADING,
    }


def crops_split_options(data_root: str, split: str) -> Dict:
    """Config options that point the test dataloader at ``split`` of the
    dataset in ``data_root`` (its annotation file lists paths relative to
    the root); mmpretrain's ``Accuracy`` needs no file."""
    return {
        'test_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.ann_file': f'annotations/{split}.txt',
    }


ACCURACY_METRIC_KEYS = {'top1': 'accuracy/top1'}


def accuracy_percent(metrics: Dict[str, float]) -> Dict[str, float]:
    """mmpretrain's ``Accuracy`` results, already in percent."""
    return {key: float(metrics[accuracy_key])
            for key, accuracy_key in ACCURACY_METRIC_KEYS.items()}


# ------------------------------------------------------------------ tasks
@dataclass(frozen=True)
class Task:
    """Everything of a benchmark task that is not the shared machinery.

    Args:
        name (str): ``'detection'`` or ``'classification'``.
        config_dir (str): Folder of its configs, relative to configs/.
        families (dict): Per family: ``teacher`` and ``baseline`` config
            files and ``teacher_model`` and ``student_model`` in words.
        methods (dict): Per method: its ``family``, its ``config`` file
            and, optionally, the student modules the config initialises
            from the teacher (``init_from_teacher``) and config options for
            its distilled runs (``options``).
        demo_methods (tuple[str]): Methods run when none are chosen.
        demo_iters (int): Training iterations when none are given.
        demo_seeds (tuple[int]): Student seeds when none are given.
        demo_variant (DataVariant | CropVariant): The dataset variant when
            no variant option is given; each option replaces one of its
            fields. A frozen dataclass with ``folder_name()``,
            ``generate(root)`` and ``to_dict()``.
        env_data_root (str): Environment variable its configs read the
            data root from when they are parsed.
        config_helpers (tuple[str]): Helper variables of its base configs
            that the resolved config carries but no component reads.
        schedule_options (callable): ``iters`` -> config options that size
            a run to ``iters`` iterations.
        split_options (callable): ``(data_root, split)`` -> config options
            that evaluate on ``split``.
        to_percent (callable): The evaluator's output -> the task's metrics
            in percent, by column name.
        score_key (str): The column the table and chart report.
        score_name (str): That column's short name, e.g. ``'mAP'``.
        metric_label (str): The metric in words, for the table's header.
        axis_label (str): The chart's y label, ``{split}`` filled in.
        units (str): The unit of every metric, for results.json.
        chart_file (str): File name of the chart.
        data_name (str): The dataset in words, for the title.
    """
    name: str
    config_dir: str
    families: Dict[str, dict]
    methods: Dict[str, dict]
    demo_methods: Tuple[str, ...]
    demo_iters: int
    demo_seeds: Tuple[int, ...]
    demo_variant: Union[DataVariant, CropVariant]
    env_data_root: str
    config_helpers: Tuple[str, ...]
    schedule_options: Callable[[int], Dict]
    split_options: Callable[[str, str], Dict]
    to_percent: Callable[[Dict[str, float]], Dict[str, float]]
    score_key: str
    score_name: str
    metric_label: str
    axis_label: str
    units: str
    chart_file: str
    data_name: str

    def variant_fields(self) -> Tuple[str, ...]:
        """The parameters of the task's dataset variants."""
        return tuple(f.name for f in fields(self.demo_variant))


DETECTION = Task(
    name='detection',
    config_dir='',
    families={
        'retina': dict(teacher='retina_r18-w32_digits.py',
                       baseline='retina_r18-w8_digits.py',
                       teacher_model='RetinaNet R18 x1/2',
                       student_model='RetinaNet R18 x1/8, 32-ch head'),
        'gfl': dict(teacher='gfl_r18-w32_digits.py',
                    baseline='gfl_r18-w8_digits.py',
                    teacher_model='GFL R18 x1/2',
                    student_model='GFL R18 x1/8, 32-ch head'),
        'faster-rcnn': dict(teacher='faster-rcnn_r18-w32_digits.py',
                            baseline='faster-rcnn_r18-w8_digits.py',
                            teacher_model='Faster R-CNN R18 x1/2',
                            student_model='Faster R-CNN R18 x1/8, '
                            '32-ch heads'),
    },
    methods={
        'fgd': dict(family='retina',
                    config='fgd_retina_r18-w32_r18-w8_digits.py'),
        'cwd': dict(family='retina',
                    config='cwd_retina_r18-w32_r18-w8_digits.py'),
        'mgd': dict(family='retina',
                    config='mgd_retina_r18-w32_r18-w8_digits.py'),
        'pkd': dict(family='retina',
                    config='pkd_retina_r18-w32_r18-w8_digits.py'),
        'ld': dict(family='gfl', config='ld_gfl_r18-w32_r18-w8_digits.py'),
        'bckd': dict(family='gfl', config='bckd_gfl_r18-w32_r18-w8_digits.py'),
        'crosskd': dict(family='gfl',
                        config='crosskd_gfl_r18-w32_r18-w8_digits.py'),
        'dkd': dict(family='faster-rcnn',
                    config='dkd_faster-rcnn_r18-w32_r18-w8_digits.py'),
        'kd': dict(family='faster-rcnn',
                   config='kd_faster-rcnn_r18-w32_r18-w8_digits.py'),
    },
    demo_methods=('cwd', ),
    # The demo's proxy: 6000 iterations (24 epochs of 2000 scenes at batch
    # 8) on scenes of 3-6 digits (generator seed 1). Doubling the schedule
    # adds +0.97 +- 0.50 mAP to the RetinaNet baseline (3 seeds, val), at
    # the edge of the 1-mAP convergence criterion, and the four runs of one
    # seed take 14.5 min on two cores (docs/efficacy.md, "The demo's
    # proxy"). The 12000-iteration 3-seed tables ran on DataVariant()
    # (seed 0, 2-5 digits).
    demo_iters=6000,
    demo_seeds=(0, ),
    demo_variant=DataVariant(seed=1, digits=(3, 6)),
    env_data_root='DIGIT_SCENES_ROOT',
    config_helpers=('digit_scenes', 'digit_retina', 'digit_gfl',
                    'digit_faster_rcnn'),
    schedule_options=scenes_schedule_options,
    split_options=scenes_split_options,
    to_percent=coco_percent,
    score_key='mAP',
    score_name='mAP',
    metric_label='COCO bbox mAP',
    axis_label='bbox mAP on {split} (COCO, %)',
    units='COCO bbox AP, percent',
    chart_file='map.png',
    data_name='digit scenes')

CLASSIFICATION = Task(
    name='classification',
    config_dir='classification/digits',
    families={
        'resnet18': dict(teacher='resnet18_digits.py',
                         baseline='resnet18-w4_digits.py',
                         teacher_model='CIFAR ResNet-18',
                         student_model='CIFAR ResNet-18 x1/4 width'),
    },
    methods={
        'cls-kd': dict(family='resnet18',
                       config='kd_resnet18_resnet18-w4_digits.py'),
        # The demo's runs are iteration-based (no epochs), so DKD's
        # epoch warm-up, which would be refused there, is off; the config's
        # own epoch-based runs keep it.
        'cls-dkd': dict(family='resnet18',
                        config='dkd_resnet18_resnet18-w4_digits.py',
                        options={'model.distill.0.loss.warmup_epochs': 0}),
        'cls-dist': dict(family='resnet18',
                         config='dist_resnet18_resnet18-w4_digits.py'),
        'cls-wsld': dict(family='resnet18',
                         config='wsld_resnet18_resnet18-w4_digits.py'),
        'cls-kd-ls': dict(family='resnet18',
                          config='kd-ls_resnet18_resnet18-w4_digits.py'),
        # One "epoch" here too: a 1-epoch curriculum (lambda -1 from the
        # start, no curriculum) and no warm-ups.
        'cls-ctkd': dict(family='resnet18',
                         config='ctkd_resnet18_resnet18-w4_digits.py',
                         options={'model.distill.0.loss.curriculum_epochs':
                                  1}),
        'cls-sdd-dkd': dict(family='resnet18',
                            config='sdd-dkd_resnet18_resnet18-w4_digits.py',
                            options={'model.distill.0.loss.warmup_epochs':
                                     0}),
        'cls-reviewkd': dict(family='resnet18',
                             config='reviewkd_resnet18_resnet18-w4_digits.py',
                             options={'model.distill.0.loss.warmup_epochs':
                                      0}),
    },
    demo_methods=('cls-kd', ),
    demo_iters=1500,
    demo_seeds=(0, 1),
    demo_variant=CropVariant(),
    env_data_root='DIGIT_CROPS_ROOT',
    config_helpers=(),
    schedule_options=crops_schedule_options,
    split_options=crops_split_options,
    to_percent=accuracy_percent,
    score_key='top1',
    score_name='top-1',
    metric_label='top-1 accuracy',
    axis_label='top-1 accuracy on {split} (%)',
    units='top-1 accuracy, percent',
    chart_file='top1.png',
    data_name='digit crops')

TASKS = {task.name: task for task in (DETECTION, CLASSIFICATION)}


def task_of_methods(methods: Iterable[str]) -> Task:
    """The one task the methods belong to.

    Raises:
        ValueError: For an unknown method, no method, or methods of more
            than one task.
    """
    by_task: Dict[str, list] = {}
    for method in methods:
        owner = next((t for t in TASKS.values() if method in t.methods),
                     None)
        if owner is None:
            raise ValueError(f'unknown method {method!r}; methods: ' +
                             ', '.join(all_methods()))
        by_task.setdefault(owner.name, []).append(method)
    if len(by_task) != 1:
        if not by_task:
            raise ValueError('no method given')
        raise ValueError(
            'the methods mix tasks (' + '; '.join(
                f'{name}: {" ".join(names)}'
                for name, names in by_task.items()) +
            '); run one task at a time')
    return TASKS[next(iter(by_task))]


def all_methods() -> Tuple[str, ...]:
    """Every method of every task."""
    return tuple(m for task in TASKS.values() for m in task.methods)
