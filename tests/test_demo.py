# Copyright (c) mmkd_plugin contributors.
"""The efficacy benchmark behind tools/demo.py: its statistics, its plan,
its run cache, the init-only control, and one tiny end-to-end run that is
then continued from its cache; the classification task's plan, its
iteration schedule and one tiny end-to-end run."""
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys

import pytest
import torch

from mmkd_plugin.efficacy.proxy import FAMILIES, METHODS, plan_runs
from mmkd_plugin.efficacy.report import Group, markdown_table, paired, summarise
from mmkd_plugin.efficacy.runs import RunSpec, load_config, signature
from mmkd_plugin.efficacy.scheduler import reached_iter

from .conftest import REPO_ROOT

CONFIG_DIR = osp.join(REPO_ROOT, 'configs')
DEMO = osp.join(REPO_ROOT, 'tools', 'demo.py')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


# ------------------------------------------------------------- statistics
def test_paired_differences_and_the_clear_gain_rule():
    baseline = Group('b', 'retina', 'baseline', 'B', {0: 40.0, 1: 42.0,
                                                       2: 41.0})
    distilled = Group('d', 'retina', 'distilled', 'D', {0: 41.0, 1: 44.0,
                                                        2: 42.5})
    stats = paired(distilled, baseline)
    assert stats['diffs'] == {0: 1.0, 1: 2.0, 2: 1.5}
    assert stats['mean'] == pytest.approx(1.5)
    assert stats['std'] == pytest.approx(statistics.stdev([1.0, 2.0, 1.5]))
    assert stats['clear']  # 1.5 > 2 * 0.5
    noisy = Group('n', 'retina', 'distilled', 'N', {0: 43.0, 1: 41.0,
                                                    2: 42.0})
    assert not paired(noisy, baseline)['clear']  # +3, -1, +1
    single = paired(Group('s', 'retina', 'distilled', 'S', {0: 45.0}),
                    baseline)
    assert single['std'] is None and not single['clear']
    other_seeds = Group('o', 'retina', 'distilled', 'O', {7: 45.0})
    assert paired(other_seeds, baseline) is None


def test_summary_gain_gap_and_control():
    groups = [
        Group('t', 'retina', 'teacher', 'T', {0: 60.0}),
        Group('b', 'retina', 'baseline', 'B', {0: 40.0, 1: 42.0}),
        Group('d', 'retina', 'distilled', 'D', {0: 46.0, 1: 48.0},
              control='c'),
        Group('c', 'retina', 'control', 'C', {0: 44.0, 1: 47.0}),
    ]
    summary = summarise(groups)
    assert summary['d']['gain'] == pytest.approx(6.0)
    assert summary['d']['gap_recovered'] == pytest.approx(6.0 / 19.0)
    assert summary['d']['vs_control']['diffs'] == {0: 2.0, 1: 1.0}
    assert summary['c']['vs_control'] is None
    assert summary['t']['gain'] is None
    table = markdown_table(groups, 'val')
    row = next(line for line in table.splitlines() if line.startswith('| d '))
    assert '+6.0' in row and '32%' in row and '+1.5 ± 0.7 (+2.0, +1.0)' in row
    assert summary['d']['vs_baseline_2x'] is None  # no 2x baseline
    teacher_below = [Group('t', 'retina', 'teacher', 'T', {0: 30.0}),
                     *groups[1:]]
    assert summarise(teacher_below)['d']['gap_recovered'] is None


def test_distilled_rows_are_paired_with_the_2x_baseline():
    groups = [
        Group('b', 'retina', 'baseline', 'B', {0: 40.0, 1: 42.0, 2: 41.0}),
        Group('b2', 'retina', 'baseline_2x', 'B2', {0: 43.0, 1: 44.0,
                                                    2: 43.0}),
        Group('d', 'retina', 'distilled', 'D', {0: 44.0, 1: 44.5, 2: 44.0}),
        Group('g', 'gfl', 'distilled', 'G', {0: 50.0}),
    ]
    summary = summarise(groups)
    # Per seed 44 - 43, 44.5 - 44, 44 - 43: against the 2x baseline, not
    # the baseline (+4, +2.5, +3).
    assert summary['d']['vs_baseline_2x']['diffs'] == {0: 1.0, 1: 0.5,
                                                        2: 1.0}
    assert summary['d']['vs_baseline']['diffs'] == {0: 4.0, 1: 2.5, 2: 3.0}
    assert summary['b2']['vs_baseline_2x'] is None
    assert summary['g']['vs_baseline_2x'] is None  # another family
    row = next(line for line in markdown_table(groups, 'val').splitlines()
               if line.startswith('| d '))
    cells = [cell.strip() for cell in row.strip('|').split('|')]
    assert cells[7] == '+3.2 ± 0.8 (+4.0, +2.5, +3.0) ✓'
    assert cells[8] == '+0.8 ± 0.3 (+1.0, +0.5, +1.0) ✓'
    assert cells[9] == '—'


# ------------------------------------------------------------------ plan
def test_plan_has_teacher_baselines_controls_and_students(monkeypatch):
    # No digits config starts its student from the teacher (the heads
    # differ in width); a method that did gets the init-only control.
    monkeypatch.setitem(METHODS['fgd'], 'init_from_teacher', ('bbox_head', ))
    specs = plan_runs(['fgd', 'cwd', 'ld'], [0, 1], 100, CONFIG_DIR,
                      convergence_seeds=[0, 1])
    names = [spec.name for spec in specs]
    assert names.count('retina_teacher') == 1
    assert names.index('retina_teacher') < names.index('fgd')
    for name in ('retina_baseline', 'retina_baseline_seed1',
                 'retina_baseline_2x', 'retina_baseline_2x_seed1', 'fgd',
                 'fgd_seed1', 'fgd_init_only', 'fgd_init_only_seed1', 'cwd',
                 'cwd_seed1', 'gfl_teacher', 'ld', 'ld_seed1'):
        assert name in names
    assert 'cwd_init_only' not in names and 'ld_init_only' not in names
    by_name = {spec.name: spec for spec in specs}
    assert by_name['retina_baseline_2x_seed1'].iters == 200
    assert by_name['fgd_seed1'].teacher == 'retina_teacher'
    control = by_name['fgd_init_only']
    assert control.init_from_teacher == ('bbox_head', )
    assert control.config.endswith(FAMILIES['retina']['baseline'])
    assert by_name['ld'].teacher == 'gfl_teacher'
    assert 'retina_baseline_2x_seed1' not in [
        s.name for s in plan_runs(['fgd'], [0, 1], 100, CONFIG_DIR)]
    bare = plan_runs(['fgd'], [0], 100, CONFIG_DIR, convergence_seeds=[],
                     controls=False)
    assert [s.name for s in bare] == ['retina_teacher', 'retina_baseline',
                                      'fgd']
    with pytest.raises(FileNotFoundError, match='no config'):
        plan_runs(['fgd'], [0], 100, '/nonexistent')


def test_every_method_config_uses_its_family_teacher_and_student():
    from mmengine.config import Config

    for method, spec in METHODS.items():
        family = FAMILIES[spec['family']]
        model = Config.fromfile(osp.join(CONFIG_DIR, spec['config'])).model
        assert model.teacher.cfg_path == \
            'mmkd_plugin::' + family['teacher'], method
        assert model.student.cfg_path == \
            'mmkd_plugin::' + family['baseline'], method
        # the benchmark's control follows what the config initialises
        assert tuple(model.get('student_init_from_teacher') or ()) == \
            tuple(spec.get('init_from_teacher', ())), method


# ------------------------------------------------------------- signature
def test_signature_follows_what_decides_the_weights(tmp_path):
    data_root = str(tmp_path)
    spec = RunSpec('fgd', osp.join(CONFIG_DIR, METHODS['fgd']['config']), 0,
                   10, teacher='retina_teacher')

    def sig(run_spec, meta=None, teacher='t1', ckpt='/a/iter_10.pth'):
        cfg = load_config(run_spec, data_root, str(tmp_path), ckpt)
        return signature(cfg, meta or dict(seed=0), teacher)

    environment = os.environ.get('DIGIT_SCENES_ROOT')
    base = sig(spec)
    # Other tests (and subprocesses) must not inherit the data root.
    assert os.environ.get('DIGIT_SCENES_ROOT') == environment
    assert sig(spec, ckpt='/elsewhere/iter_10.pth') == base
    assert sig(RunSpec(**{**spec.__dict__, 'seed': 1})) != base
    assert sig(RunSpec(**{**spec.__dict__, 'iters': 20})) != base
    assert sig(spec, meta=dict(seed=1)) != base
    assert sig(spec, teacher='t2') != base
    assert sig(RunSpec(**{**spec.__dict__, 'options': {
        'model.distill.0.loss.temp': 1.0}})) != base


# ---------------------------------------------------- init-only control
def test_init_only_control_starts_from_the_teachers_head(tmp_path):
    """The control's bbox_head equals the teacher checkpoint's after
    mmengine's weight init; its other modules do not. (The checkpoint is of
    the baseline's architecture: the proxy's teacher has a wider head.)"""
    from mmdet.registry import MODELS
    teacher_cfg = load_config(
        RunSpec('t', osp.join(CONFIG_DIR, FAMILIES['retina']['baseline']),
                0, 4), str(tmp_path), str(tmp_path), None)
    teacher = MODELS.build(teacher_cfg.model)
    teacher.init_weights()
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    control_cfg = load_config(
        RunSpec('c', osp.join(CONFIG_DIR, FAMILIES['retina']['baseline']), 0,
                4, teacher='t', init_from_teacher=('bbox_head', )),
        str(tmp_path), str(tmp_path), ckpt)
    assert 'teacher_ckpt' not in control_cfg.model
    control = MODELS.build(control_cfg.model)
    control.init_weights()
    for key, value in teacher.bbox_head.state_dict().items():
        assert torch.equal(control.bbox_head.state_dict()[key], value), key
    assert not torch.equal(control.neck.fpn_convs[0].conv.weight,
                           teacher.neck.fpn_convs[0].conv.weight)


def test_runs_of_one_process_log_to_their_own_folders(tmp_path):
    """A worker trains several runs in one process. mmdet's runtime config
    names its visualizer 'visualizer', and mmengine hands a second Runner
    the instance of that name, so each run's scalars went to the first
    run's folder (and the demo's progress lines read 0)."""
    from mmengine.runner import Runner
    for name in ('first', 'second'):
        spec = RunSpec(name, osp.join(CONFIG_DIR, 'retina_r18-w8_digits.py'),
                       0, 2)
        cfg = load_config(spec, str(tmp_path / 'data'),
                          str(tmp_path / 'work'), None)
        runner = Runner.from_cfg(cfg)
        runner.visualizer.add_scalars({'iter': 1}, step=1)
        assert reached_iter(str(tmp_path / 'work'), name) == 1, name


# ------------------------------------------------------------ end to end
def run_demo(cwd, *extra):
    """Run tools/demo.py on a tiny dataset in ``cwd``; return its output."""
    args = [sys.executable, DEMO, '--methods', 'fgd', '--seeds', '0',
            '--iters', '2', '--dataset-size', '8', '4', '4',
            '--batch-size', '2', '--convergence-seeds', '--data-root', 'data',
            '--work-dir', 'work', *extra]
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    # Only against a hung run, never a bound on speed.
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=3600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output


def test_demo_trains_reports_and_continues_from_its_cache(tmp_path):
    log = run_demo(tmp_path)
    (work, ) = [p for p in (tmp_path / 'work').iterdir()]
    assert work.name == 'seed1_64px_3-6digits_8-4-4'
    names = ['retina_teacher', 'retina_baseline', 'fgd']
    for name in names:
        assert f'{name}: started' in log
        assert (work / name / 'iter_2.pth').is_file()
    assert 'loss_fgd_fpn0' in (work / 'fgd' / 'console.log').read_text()
    assert (work / 'map.png').read_bytes()[:8] == PNG_MAGIC
    table = (work / 'table.md').read_text()
    for name in names:
        assert f'| {name} |' in table
    results = json.loads((work / 'results.json').read_text())
    runs = {run['name']: run for run in results['runs']}
    assert set(runs) == set(names)
    assert runs['fgd']['teacher'] == 'retina_teacher'
    assert all(set(run['metrics']) == {'val'} for run in runs.values())
    stamps = {name: osp.getmtime(work / name / 'iter_2.pth')
              for name in names}

    log2 = run_demo(tmp_path, '--splits', 'val', 'holdout')
    for name in names:
        assert f'{name}: trained earlier, evaluated' in log2
        assert osp.getmtime(work / name / 'iter_2.pth') == stamps[name]
    runs2 = {run['name']: run
             for run in json.loads((work / 'results.json').read_text())
             ['runs']}
    for name in names:
        assert runs2[name]['metrics']['val'] == runs[name]['metrics']['val']
        assert 'holdout' in runs2[name]['metrics']

    log3 = run_demo(tmp_path, '--splits', 'val', 'holdout')
    assert 'reused finished runs: ' + ', '.join(names) in log3


# -------------------------------------------------------- classification
def test_method_and_family_names_are_unique_across_tasks():
    """A method names its task, and a family its runs' names."""
    from mmkd_plugin.efficacy.tasks import TASKS
    methods = [m for task in TASKS.values() for m in task.methods]
    families = [f for task in TASKS.values() for f in task.families]
    assert len(set(methods)) == len(methods)
    assert len(set(families)) == len(families)
    assert {'cls-kd', 'cls-dkd', 'cls-dist'} <= set(
        TASKS['classification'].methods)


def test_every_classification_method_config_uses_its_family_models():
    from mmengine.config import Config

    from mmkd_plugin.efficacy.tasks import CLASSIFICATION as task
    for method, spec in task.methods.items():
        family = task.families[spec['family']]
        model = Config.fromfile(osp.join(CONFIG_DIR, task.config_dir,
                                         spec['config'])).model
        prefix = f'mmkd_plugin::{task.config_dir}/'
        assert model.teacher.cfg_path == prefix + family['teacher'], method
        assert model.student.cfg_path == prefix + family['baseline'], method


def test_classification_methods_train_in_the_benchmarks_one_epoch(
        random_teacher_ckpt, one_thread):
    """The benchmark's runs are iteration-based (one "epoch"): with its
    options every method takes a training step there, where the configs'
    own multi-epoch warm-ups and curricula are refused."""
    import torch
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    from mmkd_plugin.efficacy.tasks import CLASSIFICATION as task

    def build(config, options):
        cfg = Config.fromfile(osp.join(CONFIG_DIR, task.config_dir, config))
        cfg.merge_from_dict(options)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = MODELS.build(cfg.model)
        model.teacher_ckpt = random_teacher_ckpt(model.teacher)
        model.init_weights()
        return model

    MessageHub.get_current_instance().update_info('max_epochs', 1)
    inputs = torch.randn(2, 3, 32, 32)
    samples = [DataSample().set_gt_label(label) for label in (0, 5)]
    refused = []
    for method, spec in task.methods.items():
        model = build(spec['config'], spec.get('options', {}))
        losses = model.loss(inputs, samples)
        assert all(torch.isfinite(v).all() for v in losses.values()), method
        try:
            build(spec['config'], {}).loss(inputs, samples)
        except ValueError as error:
            assert 'longer than the training (1 epochs)' in str(error)
            refused.append(method)
    # Without the options, the epoch schedules are refused.
    assert refused == ['cls-dkd', 'cls-ctkd', 'cls-sdd-dkd', 'cls-reviewkd']


def test_plan_of_the_classification_runs():
    specs = plan_runs(['cls-kd', 'cls-dist'], [0, 1], 100, CONFIG_DIR)
    assert [spec.name for spec in specs] == [
        'resnet18_teacher', 'resnet18_baseline', 'resnet18_baseline_2x',
        'resnet18_baseline_seed1', 'cls-kd', 'cls-kd_seed1', 'cls-dist',
        'cls-dist_seed1']
    by_name = {spec.name: spec for spec in specs}
    assert all(spec.task == 'classification' for spec in specs)
    digits = osp.join(CONFIG_DIR, 'classification', 'digits')
    assert by_name['resnet18_teacher'].config == osp.join(
        digits, 'resnet18_digits.py')
    assert by_name['resnet18_baseline_seed1'].config == osp.join(
        digits, 'resnet18-w4_digits.py')
    assert by_name['resnet18_baseline_2x'].iters == 200
    assert by_name['cls-dist_seed1'].config == osp.join(
        digits, 'dist_resnet18_resnet18-w4_digits.py')
    assert by_name['cls-kd_seed1'].teacher == 'resnet18_teacher'
    assert by_name['cls-kd_seed1'].role == 'distilled'
    assert plan_runs(['fgd'], [0], 100, CONFIG_DIR)[0].task == 'detection'


def test_a_mix_of_tasks_is_refused(capsys):
    with pytest.raises(ValueError, match='mix tasks .*detection: kd; '
                       'classification: cls-kd'):
        plan_runs(['kd', 'cls-kd'], [0], 100, CONFIG_DIR)
    sys.path.insert(0, osp.dirname(DEMO))
    try:
        import demo
    finally:
        sys.path.pop(0)
    args = demo.parse_args(['--methods', 'cls-dist', 'cls-kd'])
    assert args.task.name == 'classification'
    assert args.variant.folder_name() == 'crops_seed0_32px_10000-20000-20000'
    assert demo.parse_args(['--task', 'classification']).methods == ['cls-kd']
    assert demo.parse_args([]).methods == ['cwd']
    for argv, message in (
            (['--methods', 'kd', 'cls-kd'], 'the methods mix tasks'),
            (['--task', 'detection', '--methods', 'cls-kd'],
             'are classification methods'),
            (['--methods', 'cls-kd', '--digits', '1', '3'],
             '--digits does not apply to the classification task')):
        with pytest.raises(SystemExit):
            demo.parse_args(argv)
        assert message in capsys.readouterr().err


def test_schedule_seeds_and_variant_default_per_task():
    """Without --iters, --seeds and variant flags each task gets its own
    demo schedule and data (detection: 6000 iterations, one seed, scenes
    of 3-6 digits from generator seed 1); a variant flag replaces one field
    of the demo variant; given flags win."""
    from mmkd_plugin.efficacy.tasks import CropVariant, DataVariant
    sys.path.insert(0, osp.dirname(DEMO))
    try:
        import demo
    finally:
        sys.path.pop(0)
    detection = demo.parse_args([])
    assert (detection.iters, detection.seeds) == (6000, [0])
    assert detection.variant == DataVariant(seed=1, digits=(3, 6))
    assert demo.parse_args(['--data-seed', '0']).variant == DataVariant(
        seed=0, digits=(3, 6))
    assert demo.parse_args(['--data-seed', '0', '--digits', '2', '5'
                            ]).variant == DataVariant()
    classification = demo.parse_args(['--task', 'classification'])
    assert (classification.iters, classification.seeds) == (1500, [0, 1])
    assert classification.variant == CropVariant()
    chosen = demo.parse_args(['--iters', '300', '--seeds', '2', '1', '2'])
    assert (chosen.iters, chosen.seeds) == (300, [2, 1])


def test_crop_variant_defaults_are_make_digit_crops_defaults():
    """The classification demo's default dataset is the one
    tools/make_digit_crops.py writes by default (the pilot's)."""
    from mmkd_plugin.efficacy.tasks import CropVariant
    sys.path.insert(0, osp.dirname(DEMO))
    try:
        import make_digit_crops
    finally:
        sys.path.pop(0)
    args = make_digit_crops.parse_args([])
    variant = CropVariant()
    assert (args.num_train, args.num_val, args.num_holdout) == \
        variant.sizes
    assert (args.image_size, args.seed) == (variant.image_size,
                                            variant.seed)


@pytest.fixture(scope='module')
def tiny_crops(tmp_path_factory):
    """A digit-crops dataset of 12 train and 8 val images."""
    from mmkd_plugin.efficacy.tasks import CropVariant
    return CropVariant(sizes=(12, 8, 0)).generate(
        str(tmp_path_factory.mktemp('crops')))


def test_classification_schedule_is_a_cosine_over_the_iterations(
        tmp_path, tiny_crops):
    """The epoch-based digits config runs as an iteration-based loop of
    ``iters`` iterations whose lr falls as a cosine from the config's lr
    towards 0 over them (iteration k at lr0 (1 + cos(pi k / iters)) / 2),
    and leaves ``iter_<iters>.pth``."""
    from mmengine.runner import Runner
    data_root, meta = tiny_crops
    spec = RunSpec('baseline', osp.join(CONFIG_DIR, 'classification',
                                        'digits', 'resnet18-w4_digits.py'),
                   0, 4, options={'train_dataloader.batch_size': 4},
                   task='classification')
    cfg = load_config(spec, data_root, str(tmp_path), None)
    assert cfg.train_dataloader.dataset.data_root.rstrip('/') == data_root
    runner = Runner.from_cfg(cfg)
    runner.train()
    lrs = list(runner.message_hub.get_scalar('train/lr').data[0])
    base_lr = cfg.optim_wrapper.optimizer.lr
    expected = [base_lr * (1 + math.cos(math.pi * k / 4)) / 2
                for k in range(4)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert runner.iter == 4
    assert (tmp_path / 'baseline' / 'iter_4.pth').is_file()


def test_demo_runs_the_classification_family(tmp_path):
    """Teacher, baseline, KD and DKD at 2 iterations on 12 crops: the table
    and results.json report top-1 accuracy on the 8 val images. DKD's epoch
    warm-up, refused under the demo's iteration-based loop, is off there."""
    args = [sys.executable, DEMO, '--methods', 'cls-kd', 'cls-dkd',
            '--seeds', '0',
            '--iters', '2', '--dataset-size', '12', '8', '0',
            '--batch-size', '4', '--convergence-seeds', '--data-root',
            'data', '--work-dir', 'work']
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    # Only against a hung run, never a bound on speed.
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=3600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    (work, ) = list((tmp_path / 'work').iterdir())
    assert work.name == 'crops_seed0_32px_12-8-0'
    names = ['resnet18_teacher', 'resnet18_baseline', 'cls-kd', 'cls-dkd']
    for name in names:
        assert f'{name}: started' in log
        assert (work / name / 'iter_2.pth').is_file()
    assert 'loss_kd' in (work / 'cls-kd' / 'console.log').read_text()
    assert (work / 'top1.png').read_bytes()[:8] == PNG_MAGIC
    results = json.loads((work / 'results.json').read_text())
    assert results['settings']['task'] == 'classification'
    assert results['units'] == 'top-1 accuracy, percent'
    runs = {run['name']: run for run in results['runs']}
    assert list(runs) == names
    assert runs['cls-kd']['teacher'] == 'resnet18_teacher'
    table = (work / 'table.md').read_text()
    assert 'top-1 accuracy (%) on the val split' in table
    assert '| val top-1 |' in table
    for name in names:
        top1 = runs[name]['metrics']['val']['top1']
        # 8 val images: a whole number of them right, in percent.
        assert top1 * 8 / 100 == pytest.approx(round(top1 * 8 / 100))
        assert 0 <= top1 <= 100
        row = next(line for line in table.splitlines()
                   if line.startswith(f'| {name} |'))
        assert f'| {top1:.1f} | {top1:.1f} |' in row


def test_distilled_options_and_tag_change_only_the_distilled_runs():
    """A setting search: the options reach the distilled students alone,
    whose rows and runs are renamed so the method's own runs stay cached;
    the teacher and the baselines are the method's."""
    weight = {'model.distill.0.loss.loss_weight': 5.0}
    specs = plan_runs(['cwd'], [0, 1], 100, CONFIG_DIR,
                      distilled_options=weight, tag='w5')
    plain = plan_runs(['cwd'], [0, 1], 100, CONFIG_DIR)
    by_name = {spec.name: spec for spec in specs}
    assert set(by_name) == {s.name for s in plain} - {'cwd', 'cwd_seed1'} | {
        'cwd_w5', 'cwd_w5_seed1'}
    assert by_name['cwd_w5_seed1'].group == 'cwd_w5'
    assert by_name['cwd_w5_seed1'].options == weight
    for spec in plain:
        if spec.role != 'distilled':
            assert by_name[spec.name] == spec
    from mmkd_plugin.efficacy.results import describe
    assert describe(by_name['cwd_w5']).endswith(' + CWD (w5)')
    assert describe(plain[-1]).endswith(' + CWD')
    bare = RunSpec('cwd', plain[-1].config, 0, 100, group='cwd',
                   role='distilled', family='retina')
    assert describe(bare).endswith(' + CWD')


def test_a_tagged_row_is_paired_with_its_methods_control(monkeypatch):
    from mmkd_plugin.efficacy.results import groups_of
    monkeypatch.setitem(METHODS['fgd'], 'init_from_teacher', ('bbox_head', ))
    specs = plan_runs(['fgd'], [0], 100, CONFIG_DIR, tag='x3',
                      distilled_options={'model.distill.0.loss.x': 1})
    results = {s.name: {'metrics': {'val': {'mAP': 50.0}}}
               for s in specs}
    groups = {g.name: g for g in groups_of(specs, results, 'val')}
    assert 'fgd_init_only' in groups
    assert groups['fgd_x3'].control == 'fgd_init_only'


def test_option_keys_must_have_their_parent_in_the_config():
    from mmkd_plugin.efficacy.runs import check_option_keys
    config = dict(model=dict(distill=[dict(loss=dict(tau=1.0))]))
    check_option_keys(config, {'model.distill.0.loss.tau': 2.0,
                               'model.distill.0.loss.loss_weight': 3.0},
                      'a.py')  # a new leaf is a constructor argument
    for key, message in (
            ('model.distil.0.loss.tau', 'a.py has no model.distil '
             r'\(there: keys distill\)'),
            ('model.distill.1.loss.tau', r'no model.distill.1 \(there: '
             'indices 0-0'),
            ('model.distill.0.los.tau', 'no model.distill.0.los'),
            ('model.distill.0.loss.tau.x', r'no model.distill.0.loss.tau.x '
             r'\(there: a float')):
        with pytest.raises(KeyError, match=message):
            check_option_keys(config, {key: 1}, 'a.py')


def test_demo_cfg_options_need_a_tag_and_keys_of_the_config(capsys):
    sys.path.insert(0, osp.dirname(DEMO))
    try:
        import demo
    finally:
        sys.path.pop(0)
    args = demo.parse_args(['--methods', 'cwd', '--tag', 'w5',
                            '--cfg-options',
                            'model.distill.0.loss.loss_weight=5'])
    assert args.cfg_options == {'model.distill.0.loss.loss_weight': 5}
    for argv, message in (
            (['--tag', 'w5'], '--cfg-options and --tag go together'),
            (['--cfg-options', 'model.distill.0.loss.tau=2'],
             '--cfg-options and --tag go together'),
            (['--tag', 'a/b', '--cfg-options', 'model.distill.0.loss.tau=2'],
             "--tag 'a/b': use letters"),
            (['--tag', 't2', '--cfg-options', 'model.distil.0.loss.tau=2'],
             'cwd_retina_r18-w32_r18-w8_digits.py has no model.distil')):
        with pytest.raises(SystemExit):
            demo.parse_args(['--methods', 'cwd', *argv])
        assert message in capsys.readouterr().err
