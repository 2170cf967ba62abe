# Copyright (c) mmkd_plugin contributors.
"""The command-line tools end to end on a tiny generated dataset:
train, resume, test (COCO mAP), export, 2-process gloo DDP, config
inheritance through ``mmkd_plugin::`` and weights-only checkpoint loading."""
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import pytest
import torch

from mmkd_plugin.datasets import generate_digit_scenes
from .conftest import CONFIG_DIR, REPO_ROOT

DIGITS_CONFIG = osp.join(CONFIG_DIR, 'cwd_retina_r101_r18_digits.py')
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
    """A working dir holding data/digit_scenes with 16 train / 8 val."""
    workdir = tmp_path_factory.mktemp('tools')
    generate_digit_scenes(str(workdir / 'data' / 'digit_scenes'),
                          num_train=16, num_val=8, seed=1)
    return workdir


def run_tool(args, cwd, env_extra=None, timeout=600):
    """Run a tool from the repo in ``cwd``; fail with its output."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env_extra or {}))
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output


def train(cwd, work_dir, max_iters, extra=()):
    return run_tool([
        sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
        DIGITS_CONFIG, '--work-dir', str(work_dir), *extra, '--cfg-options',
        f'train_cfg.max_iters={max_iters}', 'train_cfg.val_interval=1000',
        *FAST_OPTIONS
    ], cwd)


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

    log = run_tool([
        sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'),
        DIGITS_CONFIG, str(ckpt), '--work-dir', str(digits_cwd / 'test'),
        '--cfg-options', *FAST_OPTIONS
    ], digits_cwd)
    match = re.search(r'coco/bbox_mAP: (\d+\.\d+)', log)
    assert match, log[-3000:]
    assert 0.0 <= float(match.group(1)) <= 1.0

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


def test_dist_train_two_gloo_processes(digits_cwd):
    log = run_tool([
        'bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), DIGITS_CONFIG,
        '2', '--work-dir', str(digits_cwd / 'work_dist'), '--cfg-options',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=1000', *FAST_OPTIONS
    ], digits_cwd, env_extra=dict(PORT='29533', PYTHON=sys.executable))
    assert 'Distributed training: True' in log
    assert re.search(r'Iter\(train\) \[2/2\].*loss_cwd_fpn0', log)
    assert (digits_cwd / 'work_dist' / 'iter_2.pth').is_file()


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
