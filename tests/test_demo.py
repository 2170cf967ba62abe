# Copyright (c) mmkd_plugin contributors.
"""Smoke test of the demo path (tools/demo.py --smoke): teacher, baseline
and FGD-distilled student trained for a few iterations on a tiny generated
dataset through tools/train.py and tools/test.py, the table, results.json
and chart written, and a second run reusing every finished run. The full
demo (`make demo`) is not run here."""
import json
import os
import os.path as osp
import subprocess
import sys
import time

from .conftest import REPO_ROOT

DEMO = osp.join(REPO_ROOT, 'tools', 'demo.py')
DEMO_ARGS = [
    '--smoke', '--methods', 'fgd', '--work-dir', 'tmp', '--data-root',
    'data/tiny', '--dataset-size', '16', '8', '0'
]


def run_demo(cwd):
    """Run the smoke demo in ``cwd``; return (output, wall seconds)."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, DEMO, *DEMO_ARGS], cwd=cwd,
                          env=env, capture_output=True, text=True,
                          timeout=600)
    wall = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output, wall


def test_demo_smoke_writes_results_and_reuses_runs(tmp_path):
    log, first_wall = run_demo(tmp_path)
    work = tmp_path / 'tmp'
    assert (tmp_path / 'data' / 'tiny' / 'annotations' / 'val.json').is_file()
    for name in ('teacher', 'baseline', 'fgd'):
        assert f'{name}: training configs/' in log
        assert (work / name / 'iter_4.pth').is_file()
    assert 'loss_fgd_fpn0' in log  # the FGD run trained with its loss
    # the distilled run loads the teacher trained in the first stage
    teacher_ckpt = work / 'teacher' / 'iter_4.pth'
    assert f'Loads checkpoint by local backend from path: {teacher_ckpt}' \
        in log
    assert 'total wall time' in log

    table = (work / 'table.md').read_text()
    for name in ('teacher', 'baseline', 'fgd'):
        assert f'| {name} |' in table
    png = work / 'map.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    results = json.loads((work / 'results.json').read_text())
    runs = results['runs']
    assert set(runs) == {'teacher', 'baseline', 'fgd'}
    for run in runs.values():
        for key in ('mAP', 'AP50', 'AP75', 'train_time_s'):
            assert isinstance(run[key], (int, float)), (key, run)
            assert run[key] >= 0
        assert run['cached'] is False
    assert isinstance(runs['fgd']['gain'], (int, float))
    assert results['settings']['iters'] == 4
    assert results['settings']['smoke'] is True

    ckpt_times = {
        name: os.path.getmtime(work / name / 'iter_4.pth')
        for name in runs
    }
    log2, second_wall = run_demo(tmp_path)
    for name in ('teacher', 'baseline', 'fgd'):
        assert f'{name}: finished run found' in log2 and 'skipped' in log2
        assert f'{name}: training' not in log2
        assert os.path.getmtime(work / name / 'iter_4.pth') == \
            ckpt_times[name]
    assert 'reused finished runs: teacher, baseline, fgd' in log2
    assert second_wall < first_wall
    results2 = json.loads((work / 'results.json').read_text())
    for name, run in results2['runs'].items():
        assert run['cached'] is True
        assert run['mAP'] == runs[name]['mAP']
