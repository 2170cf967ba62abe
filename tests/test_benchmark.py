# Copyright (c) mmkd_plugin contributors.
"""tools/benchmark.py runs end to end (timings are printed, not checked):
a feature-distillation config, a config whose student head distils in its
own loss (the student-only step must then use the plain mmdet head), and
the argument errors."""
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.registry import DefaultScope

from .conftest import CONFIG_DIR, REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import benchmark  # noqa: E402

TINY = ['--shape', '64', '64', '--batch', '2', '--boxes', '2', '--iters',
        '1', '--warmup', '0']


@pytest.mark.parametrize('config, plain_head', [
    ('fgd_retina_r18-w32_r18-w8_digits.py', None),
    ('dkd_faster-rcnn_r18-w32_r18-w8_digits.py', 'StandardRoIHead'),
    ('ld_gfl_r18-w32_r18-w8_digits.py', 'GFLHead'),
    ('crosskd_gfl_r18-w32_r18-w8_digits.py', 'GFLHead'),
    ('classification/dist_r34_r18_in1k.py', None),
])
def test_benchmark_writes_medians(tmp_path, config, plain_head, capsys):
    scope = DefaultScope.get_current_instance().scope_name
    out = tmp_path / 'bench.json'
    benchmark.main([osp.join(CONFIG_DIR, config), *TINY, '--device', 'cpu',
                    '--json-out', str(out)])
    summary = json.loads(out.read_text())
    head_phase = {'crosskd': {benchmark.CROSSKD_PHASE},
                  'ld': {benchmark.TEACHER_HEAD_PHASE}}.get(
                      config.split('_')[0], set())
    assert set(summary['median_ms']) == set(benchmark.PHASES) | head_phase
    assert all(v > 0 for v in summary['median_ms'].values())
    assert summary['ratio'] > 0
    assert ('rest_ratio' in summary) == bool(head_phase)
    assert all(v > 0 for v in summary['peak_mb'].values())
    assert 'median: student_step' in capsys.readouterr().out

    model, student = benchmark.build_model(osp.join(CONFIG_DIR, config),
                                           'cpu')
    # A classifier config must not leave mmpretrain as the default scope of
    # the process (later mmdet builds would look in its registries).
    assert DefaultScope.get_current_instance().scope_name == scope
    if plain_head is None:
        assert student is model.student
    else:
        head = 'roi_head' if plain_head == 'StandardRoIHead' else 'bbox_head'
        assert type(getattr(student, head)).__name__ == plain_head
        assert type(getattr(model.student, head)).__name__ != plain_head


def test_summary_of_hand_built_timings():
    # Medians 20 / 5 / 45 ms: ratio 45 / (20 + 5) = 1.8. The median of the
    # per-iteration ratios (2.0, 2.08, 1.88 -> 2.0) and the ratio of the
    # means (50 / 25 = 2.0) differ from it, so another definition fails.
    def runs(times_ms, peaks):
        return [dict(time=t / 1e3, peak_mb=p) for t, p in zip(times_ms,
                                                              peaks)]

    summary = benchmark.summarise_phases(dict(
        student_step=runs([10, 30, 20], [100, 300, 200]),
        teacher_fwd=runs([5, 6, 4], [50, 40, 60]),
        distill_step=runs([30, 75, 45], [400, 500, 450])))
    assert summary['median_ms'] == pytest.approx(dict(
        student_step=20.0, teacher_fwd=5.0, distill_step=45.0))
    assert summary['ratio'] == pytest.approx(1.8)
    assert summary['peak_mb'] == dict(student_step=300, teacher_fwd=60,
                                      distill_step=500)
    assert 'rest_ratio' not in summary


def test_crosskd_rest_ratio_counts_the_teacher_head_work():
    # Medians 20 / 5 / 45 ms and CrossKD head work 5 ms: 45 / 30 = 1.5.
    def runs(times_ms):
        return [dict(time=t / 1e3, peak_mb=1) for t in times_ms]

    summary = benchmark.summarise_phases({
        'student_step': runs([20]), 'teacher_fwd': runs([5]),
        'distill_step': runs([45]), benchmark.CROSSKD_PHASE: runs([5])})
    assert summary['ratio'] == pytest.approx(1.8)
    assert summary['rest_ratio'] == pytest.approx(1.5)


def test_teacher_head_phase_of_ld_times_the_teacher_head_only():
    # The LD student's phase runs the teacher's GFL head on the teacher's
    # neck features: it must call the teacher head once and build no graph.
    config = osp.join(CONFIG_DIR, 'ld_gfl_r18-w32_r18-w8_digits.py')
    model, _ = benchmark.build_model(config, 'cpu')
    args = benchmark.parse_args([config, *TINY, '--device', 'cpu'])
    inputs, samples = benchmark.synthetic_batch(args, 10)
    phases = benchmark.teacher_head_phase(model, inputs, samples)
    assert set(phases) == {benchmark.TEACHER_HEAD_PHASE}
    calls = []
    model.teacher.bbox_head.register_forward_hook(
        lambda module, args, out: calls.append(out[0][0].requires_grad))
    phases[benchmark.TEACHER_HEAD_PHASE]()
    assert calls == [False]


def test_count_ops_counts_forward_and_backward_ops_but_not_views():
    x = torch.randn(3, 4, requires_grad=True)
    assert benchmark.count_ops(lambda: [x + 1 for _ in range(5)]) == 5
    assert benchmark.count_ops(lambda: x.view(-1).unsqueeze(0)) == 0
    forward_only = benchmark.count_ops(lambda: (x.exp() * 2).sum())
    with_backward = benchmark.count_ops(
        lambda: (x.exp() * 2).sum().backward())
    # backward: at least the gradient seed, mul and exp's mul
    assert forward_only == 3 and with_backward >= forward_only + 3


def test_count_ops_reports_the_extra_ops_of_the_distillation_step(capsys):
    summary = benchmark.benchmark_config(benchmark.parse_args([
        osp.join(CONFIG_DIR, 'bckd_gfl_r18-w32_r18-w8_digits.py'), *TINY,
        '--device', 'cpu', '--count-ops']))
    ops = summary['ops']
    assert set(ops) == set(benchmark.PHASES) | {benchmark.TEACHER_HEAD_PHASE}
    assert summary['extra_ops'] == ops['distill_step'] - sum(
        count for name, count in ops.items() if name != 'distill_step')
    assert ops['distill_step'] > ops['student_step'] > 0
    assert 'aten ops per phase' in capsys.readouterr().out


@pytest.mark.parametrize('argv, message', [
    ([], 'give a CONFIG or --demo-pairs'),
    (['no_such_config.py'], 'config not found'),
    (['--demo-pairs', osp.join(CONFIG_DIR, 'fgd_retina_r18-w32_r18-w8_digits.py')],
     'not both'),
    ([osp.join(CONFIG_DIR, 'ld_gfl_r18-w32_r18-w8_digits.py'), '--device',
      'cpu', '--count-syncs'], '--count-syncs needs a CUDA --device'),
])
def test_benchmark_argument_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(argv)
    assert message in capsys.readouterr().err
