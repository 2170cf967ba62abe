# Copyright (c) mmkd_plugin contributors.
"""Smoke test of the demo path (tools/demo.py --smoke): teacher, baseline
and FGD-distilled student trained for a few iterations on a tiny generated
dataset through tools/train.py and tools/test.py, evaluated on the val
split, the table, results.json and chart written; then a second run with
one more seed and the holdout split, which reuses every trained checkpoint
and val result, evaluates only the holdout split of the seed-0 runs and
trains only the new seed's baseline and student; then a third run that
recomputes nothing. The full demo (`make demo`) is not run here; the LD and
DKD demo configs take a train step in test_configs.py."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT

DEMO = osp.join(REPO_ROOT, 'tools', 'demo.py')
DEMO_ARGS = [
    '--smoke', '--methods', 'fgd', '--work-dir', 'tmp', '--data-root',
    'data/tiny', '--dataset-size', '16', '8', '4'
]
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# Only against a hung run (e.g. a dead-locked data-loader worker), never a
# bound on speed: a smoke run takes minutes even on a loaded machine.
HANG_GUARD_S = 3 * 3600
# The COCO line mmengine logs at the end of a tools/test.py run.
COCO_LINE = re.compile(r'coco/bbox_mAP: (\d+\.\d+)\s+coco/bbox_mAP_50: '
                       r'(\d+\.\d+)\s+coco/bbox_mAP_75: (\d+\.\d+)')


def run_demo(cwd, *extra):
    """Run the smoke demo in ``cwd``; return its output."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.run([sys.executable, DEMO, *DEMO_ARGS, *extra],
                          cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output


def printed_metrics(log: str, name: str, split: str) -> dict:
    """The metrics (percent) that the evaluation of run ``name`` on
    ``split`` printed: tools/test.py's COCO line after the demo's
    "evaluating" line of that run; 0 when CocoMetric found no detection."""
    start = log.index(f'{name}: evaluating on the {split} split')
    end = log.index(f'{name}: {split} mAP', start)
    match = COCO_LINE.search(log, start, end)
    if match is None:
        assert 'no detections' in log[start:end]
        return dict(mAP=0.0, AP50=0.0, AP75=0.0)
    return {key: 100 * float(value)
            for key, value in zip(('mAP', 'AP50', 'AP75'), match.groups())}


def assert_reports_printed_metrics(log: str, groups: dict, split: str,
                                   names: list) -> None:
    """The ``split`` numbers of runs ``names`` in results.json ``groups``
    are those their evaluation printed in ``log``."""
    runs = {run['name']: run for group in groups.values()
            for run in group['runs']}
    for name in names:
        printed = printed_metrics(log, name, split)
        for key in ('mAP', 'AP50', 'AP75'):
            # The log shows 4 decimals of the 0-1 value.
            assert runs[name][split][key] == pytest.approx(
                printed[key], abs=0.006), (name, split, key)


def test_demo_smoke_writes_results_and_reuses_runs(tmp_path):
    log = run_demo(tmp_path)
    work = tmp_path / 'tmp'
    assert (tmp_path / 'data' / 'tiny' / 'annotations' /
            'holdout.json').is_file()
    for name in ('teacher', 'baseline', 'fgd'):
        assert f'{name}: training configs/' in log
        assert f'{name}: evaluating on the val split' in log
        assert f'{name}: evaluating on the holdout split' not in log
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
    assert (work / 'map.png').read_bytes()[:8] == PNG_MAGIC

    results = json.loads((work / 'results.json').read_text())
    groups = results['groups']
    assert {name: g['role'] for name, g in groups.items()} == dict(
        teacher='teacher', baseline='baseline', fgd='distilled')
    assert_reports_printed_metrics(log, groups, 'val',
                                   ['teacher', 'baseline', 'fgd'])
    for group in groups.values():
        (run, ) = group['runs']
        assert 'holdout' not in run
        assert run['mAP'] == run['val']['mAP'] == group['mAP']['mean']
        assert group['mAP']['std'] is None  # one seed
        assert run['cached'] is False
    fgd, baseline = groups['fgd'], groups['baseline']
    assert fgd['gain'] == pytest.approx(fgd['mAP']['mean'] -
                                        baseline['mAP']['mean'])
    assert results['settings']['iters'] == 4
    assert results['settings']['seeds'] == [0]
    assert results['settings']['smoke'] is True

    ckpt_times = {name: os.path.getmtime(work / name / 'iter_4.pth')
                  for name in groups}
    log2 = run_demo(tmp_path, '--seeds', '0', '1', '--eval-holdout')
    for name in ('teacher', 'baseline', 'fgd'):
        assert f'{name}: trained checkpoint found, training skipped' in log2
        assert f'{name}: training' not in log2
        assert f'{name}: evaluating on the val split' not in log2
        assert f'{name}: evaluating on the holdout split' in log2
        assert os.path.getmtime(work / name / 'iter_4.pth') == \
            ckpt_times[name]
    for name in ('baseline_seed1', 'fgd_seed1'):
        assert f'{name}: training configs/' in log2
        marker = json.loads((work / name / 'demo_train.json').read_text())
        assert marker['signature']['seed'] == 1
    assert 'reused finished runs' not in log2
    results2 = json.loads((work / 'results.json').read_text())
    groups2 = results2['groups']
    assert len(groups2['teacher']['runs']) == 1
    for name in ('baseline', 'fgd'):
        runs = groups2[name]['runs']
        assert len(runs) == 2
        assert runs[0]['val'] == groups[name]['runs'][0]['val']
        values = [run['mAP'] for run in runs]
        assert groups2[name]['mAP']['mean'] == pytest.approx(
            sum(values) / 2)
        assert groups2[name]['mAP']['std'] is not None
    assert '±' in (work / 'table.md').read_text()
    assert_reports_printed_metrics(
        log2, groups2, 'holdout',
        ['teacher', 'baseline', 'baseline_seed1', 'fgd', 'fgd_seed1'])
    assert_reports_printed_metrics(log2, groups2, 'val',
                                   ['baseline_seed1', 'fgd_seed1'])

    log3 = run_demo(tmp_path, '--seeds', '0', '1', '--eval-holdout')
    assert 'reused finished runs: teacher, baseline, baseline_seed1, fgd, ' \
        'fgd_seed1' in log3
    assert ': training' not in log3 and ': evaluating' not in log3
    groups3 = json.loads((work / 'results.json').read_text())['groups']
    for name, group in groups3.items():
        for run, run2 in zip(group['runs'], groups2[name]['runs']):
            assert run['cached'] is True
            assert {k: v for k, v in run.items() if k != 'cached'} == \
                {k: v for k, v in run2.items() if k != 'cached'}
