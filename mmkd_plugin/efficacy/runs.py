# Copyright (c) mmkd_plugin contributors.
"""One training run of the efficacy benchmark: train, evaluate, cache.

A run is a config trained for a number of iterations with one seed on one
generated dataset, then scored by its task's evaluator (mmdet's CocoMetric,
mmpretrain's Accuracy; see :mod:`.tasks`) on the requested splits.
Everything happens in this process with mmengine's ``Runner``. What decides
the trained weights (the resolved model, data, schedule, optimizer and
seed, the dataset's parameters and the teacher's own signature) is hashed
into a signature stored next to the checkpoint, so a re-run reuses a
finished run and evaluates it only on splits it has no numbers for yet, and
retrains it when any of those changed.
"""
import copy
import gc
import hashlib
import json
import os
import os.path as osp
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config

from .tasks import TASKS, Task

# Keys of the resolved config that decide the trained weights.
TRAINING_KEYS = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper',
                 'param_scheduler', 'randomness', 'auto_scale_lr',
                 'custom_imports')
RESULT_FILE = 'result.json'


@dataclass
class RunSpec:
    """What one run trains.

    Args:
        name (str): Folder of the run under the work dir.
        config (str): Config file path.
        seed (int): Training seed (``randomness.seed``).
        iters (int): Training iterations; the config's schedule is
            rescaled to them (``Task.schedule_options``).
        teacher (str, optional): Name of the run whose final checkpoint is
            this run's ``model.teacher_ckpt``, or, with
            ``init_from_teacher``, the checkpoint those modules load.
        init_from_teacher (tuple[str]): Modules of a plain (not distilled)
            model initialised from the teacher's checkpoint (mmengine's
            ``Pretrained`` init with the module's prefix).
        options (dict): Extra config options (``merge_from_dict`` keys).
        group (str): The table row the run belongs to (one per seed).
        role (str): The row's role (see ``report.ROLES``).
        family (str): The model family of the row.
        task (str): The task (a key of ``tasks.TASKS``).
        method (str): The method of a distilled or control run (its row
            is the method, or ``<method>_<tag>`` for a tagged setting),
            else empty.
    """
    name: str
    config: str
    seed: int
    iters: int
    teacher: Optional[str] = None
    init_from_teacher: Tuple[str, ...] = ()
    options: Dict = field(default_factory=dict)
    group: str = ''
    role: str = ''
    family: str = ''
    task: str = 'detection'
    method: str = ''

    def task_spec(self) -> Task:
        """The run's :class:`~.tasks.Task`."""
        return TASKS[self.task]


def read_json(path: str) -> Optional[dict]:
    """Return the json in ``path``, or None when missing or unreadable."""
    try:
        with open(path, encoding='utf-8') as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def write_json(path: str, data: dict) -> None:
    """Write ``data`` as indented json; the file appears complete or not at
    all (written beside it, then renamed)."""
    tmp_path = path + '.tmp'
    with open(tmp_path, 'w', encoding='utf-8') as file:
        json.dump(data, file, indent=2, sort_keys=True)
        file.write('\n')
    os.replace(tmp_path, path)


@contextmanager
def data_root_env(variable: str, data_root: str) -> Iterator[None]:
    """Point the environment ``variable`` that a task's configs read when
    they are parsed (``DIGIT_SCENES_ROOT`` for configs/_base_/
    digit_scenes.py) at ``data_root`` for the duration of the block; the
    process's value is restored after it."""
    previous = os.environ.get(variable)
    os.environ[variable] = data_root
    try:
        yield
    finally:
        if previous is None:
            del os.environ[variable]
        else:
            os.environ[variable] = previous


def check_option_keys(config: dict, options: Dict[str, object],
                      config_name: str) -> None:
    """Check that every option sets a key whose parent is in ``config``.

    mmengine's ``merge_from_dict`` creates missing keys, so a misspelt
    path (``model.distil.0.loss.tau``) would train the config unchanged,
    or fail far inside the build. A leaf may be new (an argument the
    config leaves at its default); a misspelt leaf is refused by the
    constructor it reaches.

    Args:
        config (dict): The config, as a dict.
        options (dict): ``merge_from_dict`` options (dotted keys; list
            items by index).
        config_name (str): Names the config in the error.

    Raises:
        KeyError: Naming the option, the first missing part and the keys
            that exist there.
    """
    for key in options:
        node = config
        parts = key.split('.')
        for depth, part in enumerate(parts):
            if isinstance(node, (list, tuple)):
                found = part.isdigit() and int(part) < len(node)
                there = f'indices 0-{len(node) - 1}'
                node = node[int(part)] if found else None
            elif isinstance(node, dict):
                found = part in node or depth == len(parts) - 1
                there = 'keys ' + ', '.join(map(str, node))
                node = node.get(part)
            else:
                found, there = False, f'a {type(node).__name__}'
            if not found:
                path = '.'.join(parts[:depth + 1])
                raise KeyError(f'option {key}: {config_name} has no '
                               f'{path} (there: {there})')


class FormattedOnceConfig(Config):
    """A ``Config`` that formats its text once per content.

    mmengine formats the whole config with yapf each time it logs it, dumps
    it, hands it to the visualizer and stores it in a checkpoint: five
    times per run, about 5 s each on one core here, longer than a short
    run's training. The text is cached by the config's content.
    """
    _texts: Dict[str, str] = {}

    @property
    def pretty_text(self) -> str:
        key = json.dumps(self.to_dict(), sort_keys=True, default=str)
        if key not in self._texts:
            self._texts[key] = super().pretty_text
        return self._texts[key]


def load_config(spec: RunSpec, data_root: str, work_dir: str,
                teacher_ckpt: Optional[str]):
    """The resolved config of ``spec`` on the dataset in ``data_root``.

    Returns:
        mmengine.Config: The config, ready for ``Runner.from_cfg``.
    """
    task = spec.task_spec()
    with data_root_env(task.env_data_root, data_root):
        cfg_dict = Config.fromfile(spec.config).to_dict()
    for name in task.config_helpers:
        cfg_dict.pop(name, None)
    cfg = FormattedOnceConfig(cfg_dict, filename=spec.config)
    options = dict(task.schedule_options(spec.iters), **spec.options)
    options['randomness'] = dict(seed=spec.seed)
    for module in spec.init_from_teacher:
        options[f'model.{module}.init_cfg'] = dict(
            type='Pretrained', checkpoint=teacher_ckpt, prefix=f'{module}.')
    if teacher_ckpt is not None and not spec.init_from_teacher:
        options['model.teacher_ckpt'] = teacher_ckpt
    cfg.merge_from_dict(options)
    cfg.work_dir = osp.join(work_dir, spec.name)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    if cfg.get('visualizer') is not None:
        # A worker trains several runs in one process, and mmengine gives a
        # Runner the existing visualizer of the same name (mmdet's runtime
        # names it 'visualizer'), whose backends write to the first run's
        # folder. A name of this run's own keeps each run's logs in it.
        cfg.visualizer.name = f'{spec.name}_{uuid.uuid4().hex}'
    return cfg


def signature(cfg, dataset_meta: dict,
              teacher_signature: Optional[str]) -> str:
    """sha256 of what decides a run's trained weights: the resolved
    config's :data:`TRAINING_KEYS` (the teacher's checkpoint path left
    out), the dataset's parameters and the teacher run's signature."""
    resolved = copy.deepcopy(cfg.to_dict())
    resolved['model'].pop('teacher_ckpt', None)
    for module in resolved['model'].values():
        if isinstance(module, dict) and isinstance(module.get('init_cfg'),
                                                   dict):
            module['init_cfg'].pop('checkpoint', None)
    payload = dict({key: resolved.get(key) for key in TRAINING_KEYS},
                   dataset=dataset_meta, teacher=teacher_signature)
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def final_checkpoint(work_dir: str, spec: RunSpec) -> str:
    """Path of the checkpoint a finished run leaves."""
    return osp.join(work_dir, spec.name, f'iter_{spec.iters}.pth')


def evaluate(cfg, checkpoint: str, data_root: str, split: str,
             task: Task) -> Dict[str, float]:
    """Score ``checkpoint`` on ``split`` with the config's test evaluator.

    Returns:
        dict[str, float]: The task's metrics in percent (detection: mAP,
        AP50 and AP75; classification: top1).
    """
    from mmengine.runner import Runner
    test_cfg = copy.deepcopy(cfg)
    test_cfg.merge_from_dict(task.split_options(data_root, split))
    test_cfg.load_from = checkpoint
    test_cfg.custom_hooks = []
    runner = Runner.from_cfg(test_cfg)
    metrics = runner.test()
    del runner
    gc.collect()
    return task.to_percent(metrics)


def train(cfg) -> float:
    """Train ``cfg`` with mmengine's Runner.

    Returns:
        float: Mean seconds per training iteration (mmengine's iteration
        timer, without the set-up).
    """
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    seconds_per_iter = runner.message_hub.get_scalar('train/time').mean()
    del runner
    gc.collect()
    return float(seconds_per_iter)


def prepare(spec: RunSpec, work_dir: str, data_root: str,
            dataset_meta: dict, teacher_result: Optional[dict] = None):
    """The run's resolved config, its signature and its stored result when
    that result belongs to the same signature and its checkpoint exists.

    Returns:
        tuple: ``(cfg, signature, result or None)``.
    """
    teacher_ckpt = teacher_signature = None
    if spec.teacher is not None:
        teacher_ckpt = teacher_result['checkpoint']
        teacher_signature = teacher_result['signature']
    cfg = load_config(spec, data_root, work_dir, teacher_ckpt)
    run_signature = signature(cfg, dataset_meta, teacher_signature)
    result = read_json(osp.join(cfg.work_dir, RESULT_FILE))
    if (result is None or result.get('signature') != run_signature
            or not osp.isfile(final_checkpoint(work_dir, spec))):
        result = None
    return cfg, run_signature, result


def finished_result(spec: RunSpec, work_dir: str, data_root: str,
                    dataset_meta: dict, splits: List[str],
                    teacher_result: Optional[dict] = None) -> Optional[dict]:
    """The stored result of ``spec`` when nothing is left to do (trained
    with the same signature, evaluated on every split), else None."""
    _, _, result = prepare(spec, work_dir, data_root, dataset_meta,
                           teacher_result)
    if result is None or any(split not in result['metrics']
                             for split in splits):
        return None
    return dict(result, cached=True, trained=False)


def run(spec: RunSpec, work_dir: str, data_root: str, dataset_meta: dict,
        splits: List[str], teacher_result: Optional[dict] = None) -> dict:
    """Train ``spec`` (unless a finished run with the same signature
    exists) and evaluate it on every split in ``splits`` it has no numbers
    for yet.

    Args:
        spec (RunSpec): The run.
        work_dir (str): Folder holding every run's folder.
        data_root (str): The generated dataset.
        dataset_meta (dict): The dataset's parameters (its ``meta.json``).
        splits (list[str]): Splits to report, e.g. ``['val', 'holdout']``.
        teacher_result (dict, optional): The teacher run's result, for
            runs with a teacher.

    Returns:
        dict: The run's result: ``signature``, ``checkpoint``,
        ``seconds_per_iter``, ``train_seconds``, ``cached`` (False: this
        call trained or evaluated it), ``trained`` (this call trained it)
        and ``metrics`` per split.
    """
    cfg, run_signature, result = prepare(spec, work_dir, data_root,
                                         dataset_meta, teacher_result)
    result_path = osp.join(cfg.work_dir, RESULT_FILE)
    checkpoint = final_checkpoint(work_dir, spec)
    trained = result is None
    if trained:
        os.makedirs(cfg.work_dir, exist_ok=True)
        start = time.perf_counter()
        seconds_per_iter = train(cfg)
        result = dict(name=spec.name, config=spec.config, seed=spec.seed,
                      iters=spec.iters, signature=run_signature,
                      checkpoint=checkpoint,
                      seconds_per_iter=seconds_per_iter,
                      train_seconds=time.perf_counter() - start, metrics={})
        write_json(result_path, result)
    for split in splits:
        if split not in result['metrics']:
            result['metrics'][split] = evaluate(cfg, checkpoint, data_root,
                                                split, spec.task_spec())
            write_json(result_path, result)
    return dict(result, cached=False, trained=trained)
