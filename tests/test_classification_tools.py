# Copyright (c) mmkd_plugin contributors.
"""tools/train.py, tools/test.py and tools/export_student.py on a classifier
config: one tiny epoch of KD on generated digit crops, the test accuracy of
its checkpoint (with --out and --show-dir), and the exported student
loading strictly into the plain student config and predicting the same;
``mmkd_plugin::`` classifier configs in mmpretrain's scope, also with
mmpretrain's own tools/train.py."""
import importlib.util
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmkd_plugin.utils.digit_scenes import generate_digit_crops
from .conftest import CONFIG_DIR, REPO_ROOT

pytest.importorskip('mmpretrain')
from mmpretrain.registry import MODELS  # noqa: E402

DIGITS_DIR = osp.join(CONFIG_DIR, 'classification', 'digits')
KD_CONFIG = osp.join(DIGITS_DIR, 'kd_resnet18_resnet18-w4_digits.py')
STUDENT_CONFIG = osp.join(DIGITS_DIR, 'resnet18-w4_digits.py')
# Only against a hung process, never a bound on speed.
HANG_GUARD_S = 3600
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def build(cfg_path):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(Config.fromfile(cfg_path).model)


def run_tool(args, cwd):
    """Run a tool of the repo in ``cwd`` on one thread; fail with its
    output."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output


def data_options(data_root):
    """``--cfg-options`` values: the data root and single-process loading."""
    return [f'{loader}.dataset.data_root={data_root}' for loader in LOADERS
            ] + [f'{loader}.{key}' for loader in LOADERS
                 for key in ('num_workers=0', 'persistent_workers=False')]


@pytest.fixture(scope='module')
def kd_run(tmp_path_factory):
    """One epoch of KD (16 crops, batch 8: 2 iterations) from a random
    teacher; returns the working dir, the data root and the checkpoint."""
    workdir = tmp_path_factory.mktemp('cls_tools')
    data_root = str(workdir / 'crops')
    generate_digit_crops(data_root, num_train=16, num_val=8, num_holdout=8,
                         seed=1)
    teacher = build(osp.join(DIGITS_DIR, 'resnet18_digits.py'))
    torch.save({'state_dict': teacher.state_dict()}, workdir / 'teacher.pth')
    output = run_tool([
        osp.join(REPO_ROOT, 'tools', 'train.py'), KD_CONFIG, '--work-dir',
        'run', '--cfg-options', 'model.teacher_ckpt=teacher.pth',
        'train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=8',
        *data_options(data_root)
    ], workdir)
    assert re.search(r'loss_kd_logits: \d', output), output[-3000:]
    checkpoint = workdir / 'run' / 'epoch_1.pth'
    assert checkpoint.is_file(), output[-3000:]
    return workdir, data_root, checkpoint


def test_train_saves_a_distillation_checkpoint(kd_run):
    _, _, checkpoint = kd_run
    state = torch.load(checkpoint, map_location='cpu',
                       weights_only=False)['state_dict']
    assert any(key.startswith('student.backbone.') for key in state)
    assert not any(key.startswith('teacher.') for key in state)
    student = Config.fromfile(osp.join(DIGITS_DIR, 'resnet18-w4_digits.py'))
    assert state['student.head.fc.weight'].shape == (
        10, student.model.head.in_channels)


def test_test_tool_reports_accuracy_dumps_and_draws_predictions(kd_run):
    workdir, data_root, checkpoint = kd_run
    output = run_tool([
        osp.join(REPO_ROOT, 'tools', 'test.py'), KD_CONFIG, str(checkpoint),
        '--work-dir', 'test', '--out', 'predictions.pkl', '--show-dir',
        'drawn', '--cfg-options', *data_options(data_root)
    ], workdir)
    match = re.search(r'accuracy/top1: ([\d.]+)', output)
    assert match, output[-3000:]
    with open(workdir / 'predictions.pkl', 'rb') as file:
        predictions = pickle.load(file)
    labels = [int(p['gt_label']) for p in predictions]
    assert labels == list(range(8))  # the val split, in order
    correct = [int(p['pred_label']) == label
               for p, label in zip(predictions, labels)]
    assert float(match.group(1)) == pytest.approx(100 * sum(correct) / 8)
    assert len(os.listdir(workdir / 'drawn')) == 8


def load_export_tool():
    """tools/export_student.py as a module (run in-process: a fresh
    interpreter importing mmkd_plugin costs seconds)."""
    path = osp.join(REPO_ROOT, 'tools', 'export_student.py')
    spec = importlib.util.spec_from_file_location('export_student', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exported_student_loads_strictly_and_predicts_the_same(
        kd_run, monkeypatch, capsys):
    workdir, _, checkpoint = kd_run
    exported_path = str(workdir / 'student.pth')
    monkeypatch.setattr(sys, 'argv', [
        'export_student.py', str(checkpoint), exported_path])
    load_export_tool().main()
    assert 'student tensors' in capsys.readouterr().out
    student = build(STUDENT_CONFIG)
    exported = torch.load(exported_path, map_location='cpu',
                          weights_only=False)['state_dict']
    student.load_state_dict(exported, strict=True)
    distiller = build(KD_CONFIG)
    distiller.load_state_dict(
        torch.load(checkpoint, map_location='cpu',
                   weights_only=False)['state_dict'], strict=True)
    student.eval()
    distiller.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(student(images, mode='tensor'),
                           distiller(images, mode='tensor'))


def test_mmkd_plugin_prefix_gives_classifier_configs_mmpretrain_scope(
        tmp_path):
    """A config inheriting ours through ``mmkd_plugin::`` builds in
    mmpretrain's registries, and so does mmengine.hub's get_model."""
    from mmengine.hub import get_model
    child = tmp_path / 'child.py'
    child.write_text("_base_ = 'mmkd_plugin::classification/digits/"
                     "kd_resnet18_resnet18-w4_digits.py'\n")
    cfg = Config.fromfile(str(child))
    assert cfg.default_scope == 'mmpretrain'
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'DistillationClassifier'
    student = get_model(
        'mmkd_plugin::classification/digits/resnet18-w4_digits.py')
    assert type(student).__name__ == 'ImageClassifier'


def test_mmpretrain_train_tool_with_custom_imports(kd_run):
    """mmpretrain's own tools/train.py trains a config that inherits ours
    through ``mmkd_plugin::`` (custom_imports registers the wrapper)."""
    import mmpretrain
    tool = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools',
                    'train.py')
    if not osp.isfile(tool):
        pytest.skip('this mmpretrain install ships no tools/train.py')
    workdir, data_root, _ = kd_run
    child = workdir / 'child.py'
    child.write_text(
        "_base_ = 'mmkd_plugin::classification/digits/"
        "kd_resnet18_resnet18-w4_digits.py'\n"
        "custom_imports = dict(imports=['mmkd_plugin'], "
        'allow_failed_imports=False)\n')
    output = run_tool([
        tool, str(child), '--work-dir', 'mmpretrain_run', '--cfg-options',
        'model.teacher_ckpt=teacher.pth', 'train_cfg.max_epochs=1',
        'train_dataloader.batch_size=8', 'default_hooks.logger.interval=1',
        *data_options(data_root)
    ], workdir)
    assert re.search(r'Epoch\(train\) \[1\]\[2/2\].*loss_kd_logits: \d',
                     output), output[-3000:]
    assert (workdir / 'mmpretrain_run' / 'epoch_1.pth').is_file()


def test_benchmark_epoch_times_each_config_against_the_first(
        tmp_path, monkeypatch, capsys):
    """tools/benchmark_epoch.py trains each config one epoch on its real
    data and prints the ratios to the first (timings are printed, not
    checked); an iteration-based config is refused."""
    import runpy
    data_root = str(tmp_path / 'crops')
    generate_digit_crops(data_root, num_train=8, num_val=4, num_holdout=0)
    monkeypatch.setenv('DIGIT_CROPS_ROOT', data_root)
    tool = runpy.run_path(osp.join(REPO_ROOT, 'tools', 'benchmark_epoch.py'))
    loaders = [f'train_dataloader.{key}' for key in (
        'num_workers=0', 'persistent_workers=False', 'batch_size=4')]
    rows = tool['main']([
        osp.join(DIGITS_DIR, 'resnet18-w4_digits.py'),
        osp.join(DIGITS_DIR, 'resnet18_digits.py'), '--cfg-options', *loaders
    ])
    assert [osp.basename(row['config']) for row in rows] == [
        'resnet18-w4_digits.py', 'resnet18_digits.py']
    assert all(row['epoch_s'] > 0 and row['step_s'] > 0 for row in rows)
    assert [row['steps'] for row in rows] == [2, 2]  # 8 images, batch 4
    out = capsys.readouterr().out
    assert '| resnet18-w4_digits.py |' in out
    assert out.split('| resnet18-w4_digits.py |')[1].split('|')[1].strip() \
        == '1.000'
    with pytest.raises(ValueError, match='trains by iterations'):
        tool['main']([osp.join(CONFIG_DIR, 'cwd_retina_r18-w32_r18-w8_digits.py')])


def test_benchmark_epoch_repeats_alternate_the_order(capsys):
    """--repeats times the configs in A B, B A order and reports medians,
    so a slowdown of whichever config runs second cancels out."""
    import runpy
    tool = runpy.run_path(osp.join(REPO_ROOT, 'tools', 'benchmark_epoch.py'))
    order = []

    def fake_time_config(path, args, work_dir):
        slowdown = 1.1 if len(order) % 2 else 1.0  # the second of a repeat
        order.append(osp.basename(path))
        return dict(config=path, epoch_s=10 * slowdown, crops=1, steps=5,
                    step_s=2 * slowdown, data_s=0.5)

    tool['main'].__globals__['time_config'] = fake_time_config
    plain = osp.join(DIGITS_DIR, 'resnet18-w4_digits.py')
    other = osp.join(DIGITS_DIR, 'resnet18_digits.py')
    rows = tool['main']([plain, other, '--repeats', '2'])
    assert order == ['resnet18-w4_digits.py', 'resnet18_digits.py',
                     'resnet18_digits.py', 'resnet18-w4_digits.py']
    assert [row['epoch_s'] for row in rows] == [pytest.approx(10.5)] * 2
    assert rows[1]['step_ratios'] == [pytest.approx(1.1),
                                      pytest.approx(1 / 1.1)]
    assert rows[0]['step_ratios'] == [1.0, 1.0]
    line = capsys.readouterr().out.split('| resnet18_digits.py |')[1]
    assert line.split('|')[1].strip() == '1.000 (0.909-1.100)'
    with pytest.raises(SystemExit):
        tool['main']([plain, '--repeats', '0'])


def test_benchmark_epoch_counts_a_multi_crop_pass_as_its_crops(
        monkeypatch):
    """With k crops of each image per step (FKDMultiCrop) one pass counts
    as k epochs: the wall time is reported per counted epoch, which holds
    a plain epoch's samples."""
    import runpy
    from mmengine.logging import MessageHub
    from mmengine.runner import Runner
    tool = runpy.run_path(osp.join(REPO_ROOT, 'tools', 'benchmark_epoch.py'))
    fkd_dir = osp.join(CONFIG_DIR, 'classification', 'fkd')
    multi = osp.join(fkd_dir, 'fkd-t4-mc2_resnet18-w4_digits.py')
    plain = osp.join(DIGITS_DIR, 'resnet18-w4_digits.py')
    assert tool['crops_per_image'](Config.fromfile(multi)) == 2
    assert tool['crops_per_image'](
        Config.fromfile(osp.join(fkd_dir, 'fkd-mc4_resnet18-w4_digits.py'))
    ) == 4
    assert tool['crops_per_image'](Config.fromfile(plain)) == 1

    clock = [0.0]

    class FakeRunner:
        """Trains 12 s per pass of 10 steps."""

        def __init__(self, epochs):
            self.train_loop = type('Loop', (), dict(max_iters=10 * epochs))
            self.message_hub = MessageHub.get_instance('fake_benchmark')
            self.epochs = epochs

        def train(self):
            for _ in range(10 * self.epochs):
                self.message_hub.update_scalar('train/time', 1.2)
                self.message_hub.update_scalar('train/data_time', 0.1)
            clock[0] += 12.0 * self.epochs

    monkeypatch.setattr(Runner, 'from_cfg', staticmethod(
        lambda cfg: FakeRunner(cfg.train_cfg.max_epochs)))
    monkeypatch.setattr(tool['time'], 'perf_counter', lambda: clock[0])
    args = tool['parse_args']([multi, '--epochs', '3'])
    timing = tool['time_config'](multi, args, 'unused')
    assert timing['epoch_s'] == pytest.approx(6.0)  # 12 s per pass / 2
    assert (timing['crops'], timing['steps']) == (2, 10)
    assert timing['step_s'] == pytest.approx(1.2)
