# Copyright (c) mmkd_plugin contributors.
"""The command-line tools end to end on a tiny generated dataset:
train, resume, test (COCO mAP, --out, --show-dir), export, 2-process gloo
DDP, the launchers' choice of interpreter, config inheritance and
mmengine.hub through ``mmkd_plugin::``, weights-only checkpoint loading and
the dataset tool's defaults."""
import os
import os.path as osp
import pickle
import re
import stat
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
from .conftest import CONFIG_DIR, REPO_ROOT

DIGITS_CONFIG = osp.join(CONFIG_DIR, 'cwd_retina_r18-w32_r18-w8_digits.py')
# Only against a hung process, never a bound on speed.
HANG_GUARD_S = 3 * 3600
FAST_OPTIONS = [
    'model.student.backbone.init_cfg=None',
    'model.student.test_cfg.score_thr=0.0',
    'train_dataloader.batch_size=2',
    'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.interval=2',
] + [
    f'{loader}.{key}'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for key in ('num_workers=0', 'persistent_workers=False')
]


@pytest.fixture(scope='module')
def digits_cwd(tmp_path_factory):
    """A working dir holding data/digit_scenes with 16 train / 8 val and
    teacher.pth, the weights of a randomly initialised digits teacher."""
    from mmdet.registry import MODELS
    workdir = tmp_path_factory.mktemp('tools')
    generate_digit_scenes(str(workdir / 'data' / 'digit_scenes'),
                          num_train=16, num_val=8, seed=1)
    teacher = MODELS.build(Config.fromfile(DIGITS_CONFIG).model).teacher
    torch.save({'state_dict': teacher.state_dict()}, workdir / 'teacher.pth')
    return workdir


def run_tool(args, cwd, env_extra=None):
    """Run a tool from the repo in ``cwd``; fail with its output."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env_extra or {}))
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=HANG_GUARD_S)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output


def train(cwd, work_dir, max_iters, extra=()):
    return run_tool([
        sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
        DIGITS_CONFIG, '--work-dir', str(work_dir), *extra, '--cfg-options',
        f'train_cfg.max_iters={max_iters}', 'train_cfg.val_interval=1000',
        'model.teacher_ckpt=teacher.pth', *FAST_OPTIONS
    ], cwd)


def coco_map_of(predictions_pkl, ann_file) -> float:
    """COCO box mAP of dumped predictions, with pycocotools directly."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with open(predictions_pkl, 'rb') as file:
        predictions = pickle.load(file)
    coco = COCO(str(ann_file))
    names = {c['name']: c['id'] for c in coco.loadCats(coco.getCatIds())}
    category_ids = [names[str(digit)] for digit in range(10)]
    detections = []
    for prediction in predictions:
        pred = prediction['pred_instances']
        for (x1, y1, x2, y2), score, label in zip(
                pred['bboxes'].tolist(), pred['scores'].tolist(),
                pred['labels'].tolist()):
            detections.append(dict(
                image_id=prediction['img_id'], score=score,
                category_id=category_ids[label],
                bbox=[x1, y1, x2 - x1, y2 - y1]))
    evaluation = COCOeval(coco, coco.loadRes(detections), 'bbox')
    evaluation.params.maxDets = [100, 300, 1000]  # as mmdet's CocoMetric
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return float(evaluation.stats[0])


def test_train_resume_test_export(digits_cwd):
    work_dir = digits_cwd / 'work_cwd'
    log = train(digits_cwd, work_dir, max_iters=2)
    assert re.search(r'Iter\(train\) \[2/2\].*loss_cwd_fpn0', log)
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location='cpu')  # weights_only default
    assert not any(k.startswith('teacher.') for k in state['state_dict'])

    log = train(digits_cwd, work_dir, max_iters=3, extra=['--resume'])
    assert 'resumed epoch: 0, iter: 2' in log
    assert re.search(r'Iter\(train\) \[3/3\]', log)
    ckpt = work_dir / 'iter_3.pth'  # max_keep_ckpts=1 removed iter_2
    state = torch.load(ckpt, map_location='cpu')

    predictions = digits_cwd / 'predictions.pkl'
    show_dir = digits_cwd / 'drawn'
    log = run_tool([
        sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'),
        DIGITS_CONFIG, str(ckpt), '--work-dir', str(digits_cwd / 'test'),
        '--out', str(predictions), '--show-dir', str(show_dir),
        '--cfg-options', *FAST_OPTIONS
    ], digits_cwd)
    match = re.search(r'coco/bbox_mAP: (\d+\.\d+)', log)
    assert match, log[-3000:]
    # The printed mAP is that of the dumped predictions (CocoMetric rounds
    # to 3 decimals).
    val_ann = digits_cwd / 'data' / 'digit_scenes' / 'annotations' / \
        'val.json'
    assert float(match.group(1)) == pytest.approx(
        coco_map_of(predictions, val_ann), abs=5.01e-4)
    # --show-dir: every val image drawn, under its own name.
    val_images = sorted(os.listdir(digits_cwd / 'data' / 'digit_scenes' /
                                   'val'))
    assert sorted(os.listdir(show_dir)) == val_images

    out = digits_cwd / 'student.pth'
    log = run_tool([
        sys.executable, osp.join(REPO_ROOT, 'tools', 'export_student.py'),
        str(ckpt), str(out)
    ], digits_cwd)
    assert 'student tensors' in log
    exported = torch.load(out, map_location='cpu')['state_dict']
    assert exported.keys() == {
        k[len('student.'):]
        for k in state['state_dict'] if k.startswith('student.')
    }

    # The exported (plain mmdet) checkpoint evaluates the same student.
    exported_predictions = digits_cwd / 'predictions_exported.pkl'
    run_tool([
        sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'),
        DIGITS_CONFIG, str(out), '--work-dir', str(digits_cwd / 'test2'),
        '--out', str(exported_predictions), '--cfg-options', *FAST_OPTIONS
    ], digits_cwd)
    with open(predictions, 'rb') as a, open(exported_predictions, 'rb') as b:
        distilled, plain = pickle.load(a), pickle.load(b)
    assert len(distilled) == len(plain) == len(val_images)
    for ours, theirs in zip(distilled, plain):
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(ours['pred_instances'][key],
                               theirs['pred_instances'][key])


def test_dist_train_two_gloo_processes(digits_cwd):
    log = run_tool([
        'bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), DIGITS_CONFIG,
        '2', '--work-dir', str(digits_cwd / 'work_dist'), '--cfg-options',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=1000',
        'model.teacher_ckpt=teacher.pth', *FAST_OPTIONS
    ], digits_cwd, env_extra=dict(PORT='29533', PYTHON=sys.executable))
    assert 'Distributed training: True' in log
    assert re.search(r'Iter\(train\) \[2/2\].*loss_cwd_fpn0', log)
    assert (digits_cwd / 'work_dist' / 'iter_2.pth').is_file()


def fake_checkout(tmp_path, with_venv: bool):
    """A copy of the launchers in a checkout whose .venv (if any) and PATH
    hold stand-ins for python and srun that record how they were called."""
    (tmp_path / 'tools').mkdir()
    for name in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
                 'find_python.sh'):
        (tmp_path / 'tools' / name).write_text(
            open(osp.join(REPO_ROOT, 'tools', name)).read())
    record = tmp_path / 'calls.txt'
    stand_ins = [tmp_path / 'bin' / 'python', tmp_path / 'bin' / 'srun']
    if with_venv:
        stand_ins.append(tmp_path / '.venv' / 'bin' / 'python')
    for path in stand_ins:  # each records its own path and its arguments
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'#!/bin/sh\necho "{path} $*" >> {record}\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHON'}
    env['PATH'] = f'{tmp_path / "bin"}:/usr/bin:/bin'
    return record, env


@pytest.mark.parametrize('with_venv', [True, False])
def test_launchers_use_the_checkout_venv(tmp_path, with_venv):
    record, env = fake_checkout(tmp_path, with_venv)
    expected = str(tmp_path / ('.venv/bin/python' if with_venv else
                               'bin/python'))
    commands = [['tools/dist_train.sh', 'cfg.py', '2'],
                ['tools/dist_test.sh', 'cfg.py', 'ckpt.pth', '2'],
                ['tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'work']]
    for command in commands:
        proc = subprocess.run(['bash', *command], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    calls = [call.split() for call in record.read_text().splitlines()]
    # dist_*: the torch check, then torchrun; slurm: srun runs the python.
    launches = [c for c in calls if 'torch.distributed.run' in c]
    assert [c[0] for c in launches] == [expected, expected]
    (srun, ) = [c for c in calls if c[0].endswith('srun')]

    srun_python = srun[srun.index('-u') - 1]  # found on the nodes' PATH
    if with_venv:  # relative to the checkout
        assert osp.realpath(osp.join(tmp_path, srun_python)) == expected
    else:
        assert srun_python == 'python'


def test_launcher_without_torch_says_what_to_do(tmp_path):
    record, env = fake_checkout(tmp_path, with_venv=False)
    env['PYTHON'] = '/bin/false'  # an interpreter that cannot import torch
    proc = subprocess.run(['bash', 'tools/dist_train.sh', 'cfg.py', '2'],
                          cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 1
    assert "'/bin/false' cannot import torch" in proc.stderr
    assert 'make setup' in proc.stderr


def test_config_inherits_mmkd_plugin_prefix_in_fresh_interpreter(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text("_base_ = 'mmkd_plugin::cwd_retina_r101_r18.py'\n"
                     "model = dict(teacher_ckpt=None)\n")
    code = ('import sys\n'
            'from mmengine.config import Config\n'
            f'cfg = Config.fromfile({str(child)!r})\n'
            'print(cfg.model.type, cfg.model.teacher_ckpt, '
            'cfg.model.distill[0].loss.type)\n')
    out = run_tool([sys.executable, '-c', code], tmp_path)
    assert 'DistillationDetector None CWDLoss' in out
    child.write_text("_base_ = 'mmkd_plugin::no_such_config.py'\n")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode != 0
    assert 'no such mmkd_plugin config' in proc.stderr


def test_hub_get_config_and_get_model_in_fresh_interpreter(tmp_path):
    code = (
        'from mmengine.hub import get_config, get_model\n'
        "cfg = get_config('mmkd_plugin::cwd_retina_r101_r18.py')\n"
        'print(cfg.model.type, cfg.model.distill[0].loss.type)\n'
        "base = get_config('mmkd_plugin::_base_/digit_scenes.py')\n"
        "print('base', base.digit_scenes.train_cfg.max_iters)\n"
        "model = get_model('mmkd_plugin::cwd_retina_r18-w32_r18-w8_digits.py')\n"
        'print(type(model).__name__, type(model.student).__name__,\n'
        '      sorted(model.distill_loss_keys()))\n'
        'try:\n'
        "    get_config('mmkd_plugin::no_such_config.py')\n"
        'except FileNotFoundError as err:\n'
        "    print('missing:', err)\n")
    out = run_tool([sys.executable, '-c', code], tmp_path)
    assert 'DistillationDetector CWDLoss' in out
    assert 'base 1000' in out
    assert "DistillationDetector RetinaNet ['loss_cwd_fpn0', " \
        "'loss_cwd_fpn1', 'loss_cwd_fpn2', 'loss_cwd_fpn3']" in out
    assert 'missing: mmkd_plugin::no_such_config.py: no such mmkd_plugin ' \
        'config' in out


def test_make_digit_scenes_defaults_are_the_variant_defaults():
    """tools/make_digit_scenes.py writes DataVariant()'s dataset by default
    (seed 0, 2-5 digits: the 3-seed tables' data; the demo's variant is
    DETECTION.demo_variant)."""
    from mmkd_plugin.efficacy.proxy import DataVariant
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
    try:
        import make_digit_scenes
    finally:
        sys.path.pop(0)
    args = make_digit_scenes.parse_args([])
    variant = DataVariant()
    assert (args.num_train, args.num_val, args.num_holdout) == \
        variant.sizes == (2000, 1000, 1000)
    assert (args.image_size, args.seed) == (variant.image_size,
                                            variant.seed) == (64, 0)
    assert (args.min_digits, args.max_digits) == variant.digits
    assert variant.digit_size is None  # the generator's default range


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned', ))


def test_weights_only_allow_list_stays_restrictive(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(1.5)
    path = tmp_path / 'hub.pth'
    torch.save({'buffer': buffer}, path)
    loaded = torch.load(path)
    assert loaded['buffer'].mean() == 1.5

    evil = tmp_path / 'evil.pth'
    torch.save({'x': _Evil()}, evil)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(evil)

    class _SneakyGetattr:

        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    sneaky = tmp_path / 'sneaky.pth'
    torch.save({'x': _SneakyGetattr()}, sneaky)
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(sneaky)
