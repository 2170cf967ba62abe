# Copyright (c) mmkd_plugin contributors.
"""The demo's table arithmetic and layout (mmkd_plugin.utils.demo_report)
on hand-made runs, no training."""
import copy
import math

import pytest

from mmkd_plugin.utils.demo_report import (has_holdout, markdown_table,
                                           plot_map, summarise)


def make_run(map_value, holdout=None, train_time_s=100.0):
    run = dict(mAP=map_value, AP50=map_value + 10, AP75=map_value - 5,
               train_time_s=train_time_s)
    if holdout is not None:
        run['holdout'] = dict(mAP=holdout, AP50=holdout, AP75=holdout)
    return run


def make_groups(with_holdout):
    def runs(values, holdouts):
        return [make_run(v, h if with_holdout else None, 100.0 * (i + 1))
                for i, (v, h) in enumerate(zip(values, holdouts))]

    return {
        'teacher': dict(family='retina', role='teacher', model='R50',
                        runs=runs([80.0], [78.0])),
        'baseline': dict(family='retina', role='baseline', model='R18',
                         runs=runs([20.0, 24.0], [21.0, 23.0])),
        'fgd': dict(family='retina', role='distilled', model='R18 + FGD',
                    runs=runs([50.0, 54.0], [49.0, 51.0])),
    }


def test_summarise_means_spreads_gain_and_gap_share():
    groups = make_groups(with_holdout=True)
    summarise(groups)
    baseline, fgd, teacher = (groups[k] for k in ('baseline', 'fgd',
                                                  'teacher'))
    assert baseline['mAP']['mean'] == pytest.approx(22.0)
    assert baseline['mAP']['std'] == pytest.approx(math.sqrt(8.0))
    assert teacher['mAP']['std'] is None  # one seed: no spread
    assert fgd['AP50']['mean'] == pytest.approx(62.0)
    assert fgd['train_time_s'] == pytest.approx(150.0)
    assert fgd['gain'] == pytest.approx(52.0 - 22.0)
    assert fgd['gap_recovered'] == pytest.approx(30.0 / (80.0 - 22.0))
    assert fgd['holdout_gain'] == pytest.approx(50.0 - 22.0)
    assert fgd['holdout_gap_recovered'] == pytest.approx(28.0 / 56.0)
    for group in (teacher, baseline):
        assert group['gain'] is None and group['gap_recovered'] is None


def test_holdout_needs_every_run_of_the_family():
    groups = make_groups(with_holdout=True)
    del groups['baseline']['runs'][1]['holdout']  # seed 1 not evaluated
    summarise(groups)
    assert groups['baseline']['holdout_mAP'] is None
    assert groups['fgd']['holdout_mAP']['mean'] == pytest.approx(50.0)
    assert groups['fgd']['holdout_gain'] is None
    assert groups['fgd']['gain'] == pytest.approx(30.0)


def test_teacher_below_baseline_has_no_gap_share():
    groups = make_groups(with_holdout=False)
    groups['teacher']['runs'][0]['mAP'] = 10.0
    summarise(groups)
    assert groups['fgd']['gap_recovered'] is None
    assert 'n/a (teacher not above baseline)' in markdown_table(groups)


@pytest.mark.parametrize('with_holdout', [False, True])
def test_markdown_table_rows_and_columns(with_holdout):
    groups = make_groups(with_holdout)
    summarise(groups)
    lines = markdown_table(groups).splitlines()
    header = [cell.strip() for cell in lines[0].strip('|').split('|')]
    assert ('holdout mAP' in header) is with_holdout
    assert has_holdout(groups) is with_holdout
    assert len(lines) == 2 + len(groups)
    for line in lines[1:]:
        assert line.count('|') == len(header) + 1
    fgd_row = dict(zip(header, (c.strip() for c in
                                lines[4].strip('|').split('|'))))
    assert fgd_row['run'] == 'fgd'
    assert fgd_row['seeds'] == '2'
    assert fgd_row['mAP'] == f'52.0 ± {math.sqrt(8.0):.1f}'
    assert fgd_row['mAP per seed'] == '50.0, 54.0'
    assert fgd_row['gain'] == '+30.0'
    assert fgd_row['gap recovered'] == f'{100 * 30 / 58:.0f}%'
    assert fgd_row['train time per run'] == '150 s'
    if with_holdout:
        assert fgd_row['holdout mAP'] == f'50.0 ± {math.sqrt(2.0):.1f}'
        assert fgd_row['holdout gain'] == '+28.0'


def test_plot_map_writes_a_png_per_family_panel(tmp_path):
    groups = make_groups(with_holdout=False)
    gfl = copy.deepcopy(groups)
    for name, group in gfl.items():
        group['family'] = 'gfl'
        groups[f'gfl_{name}'] = group
    summarise(groups)
    path = tmp_path / 'map.png'
    plot_map(groups, str(path), 'test')
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
