# Copyright (c) mmkd_plugin contributors.
"""Tables and the chart of the distillation demo (tools/demo.py).

A *group* is one row of the table: the teacher of a detector family, its
student baseline, or one distilled student, with the COCO metrics of each
seed it was trained with. Means, spreads, gains and the share of the
teacher-student gap recovered are computed here from those per-seed runs.
"""
import statistics
from typing import Dict, List, Optional

METRICS = ('mAP', 'AP50', 'AP75')


def mean_and_spread(values: List[float]) -> Dict[str, Optional[float]]:
    """Mean and sample standard deviation (None for a single value)."""
    return dict(mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else None)


def summarise(groups: Dict[str, dict]) -> None:
    """Add per-metric means and spreads, gains and gap shares in place.

    Args:
        groups (dict[str, dict]): Table rows by name; each holds
            ``family``, ``role`` (``'teacher'``, ``'baseline'`` or
            ``'distilled'``) and ``runs``: per-seed result dicts with the
            val split's ``mAP``, ``AP50``, ``AP75`` and, when evaluated,
            ``holdout`` (the same metrics on the holdout split).

    A distilled group gets ``gain`` (mean mAP minus its family baseline's
    mean) and ``gap_recovered`` (gain / (teacher - baseline); None when the
    teacher is not above the baseline), on val and, when every run of the
    family has it, on holdout (``holdout_gain``, ``holdout_gap_recovered``).
    """
    for group in groups.values():
        runs = group['runs']
        for metric in METRICS:
            group[metric] = mean_and_spread([run[metric] for run in runs])
        holdout = [run['holdout']['mAP'] for run in runs
                   if run.get('holdout')]
        group['holdout_mAP'] = mean_and_spread(holdout) \
            if len(holdout) == len(runs) else None
        group['train_time_s'] = statistics.fmean(
            run['train_time_s'] for run in runs)
    for group in groups.values():
        group['gain'] = group['gap_recovered'] = None
        group['holdout_gain'] = group['holdout_gap_recovered'] = None
        if group['role'] != 'distilled':
            continue
        teacher, baseline = (_family_member(groups, group['family'], role)
                             for role in ('teacher', 'baseline'))
        group['gain'], group['gap_recovered'] = _gain_and_share(
            group['mAP'], baseline['mAP'], teacher['mAP'])
        if all(g['holdout_mAP'] for g in (group, teacher, baseline)):
            group['holdout_gain'], group['holdout_gap_recovered'] = \
                _gain_and_share(group['holdout_mAP'],
                                baseline['holdout_mAP'],
                                teacher['holdout_mAP'])


def _family_member(groups: Dict[str, dict], family: str, role: str) -> dict:
    for group in groups.values():
        if group['family'] == family and group['role'] == role:
            return group
    raise KeyError(f'no {role} for the {family} family')


def _gain_and_share(distilled: dict, baseline: dict, teacher: dict):
    gain = distilled['mean'] - baseline['mean']
    gap = teacher['mean'] - baseline['mean']
    return gain, (gain / gap if gap > 0 else None)


def _mean_text(stats: Optional[dict]) -> str:
    if stats is None:
        return '—'
    if stats['std'] is None:
        return f'{stats["mean"]:.1f}'
    return f'{stats["mean"]:.1f} ± {stats["std"]:.1f}'


def _gain_text(gain: Optional[float]) -> str:
    return '—' if gain is None else f'{gain:+.1f}'


def _share_text(group: dict, key: str) -> str:
    if group['role'] != 'distilled':
        return '—'
    if group[key] is None:
        return 'n/a (teacher not above baseline)'
    return f'{100 * group[key]:.0f}%'


def has_holdout(groups: Dict[str, dict]) -> bool:
    """Whether some group has holdout metrics for every one of its runs."""
    return any(group['holdout_mAP'] for group in groups.values())


def markdown_table(groups: Dict[str, dict]) -> str:
    """The results as a markdown table, one row per group.

    mAP columns show mean ± sample standard deviation over the seeds;
    the per-seed val mAPs follow in seed order. The holdout columns appear
    only when some group was evaluated on the holdout split.
    """
    with_holdout = has_holdout(groups)
    columns = ['run', 'model', 'seeds', 'mAP', 'AP50', 'AP75',
               'mAP per seed', 'gain', 'gap recovered'] + \
        (['holdout mAP', 'holdout gain'] if with_holdout else []) + \
        ['train time per run']
    lines = ['| ' + ' | '.join(columns) + ' |',
             '| ' + ' | '.join('---' if column in ('run', 'model',
                                                   'mAP per seed')
                               else '---:' for column in columns) + ' |']
    for name, group in groups.items():
        per_seed = ', '.join(f'{run["mAP"]:.1f}' for run in group['runs'])
        cells = [name, group['model'], str(len(group['runs'])),
                 _mean_text(group['mAP']), f'{group["AP50"]["mean"]:.1f}',
                 f'{group["AP75"]["mean"]:.1f}', per_seed,
                 _gain_text(group['gain']),
                 _share_text(group, 'gap_recovered')]
        if with_holdout:
            cells += [_mean_text(group['holdout_mAP']),
                      _gain_text(group['holdout_gain'])]
        cells.append(f'{group["train_time_s"]:.0f} s')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def plot_map(groups: Dict[str, dict], path: str, title: str) -> None:
    """Bar chart of mean val mAP per group (spread as error bars), one panel
    per detector family, with its teacher and baseline marked by lines."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(g['family'] for g in groups.values()))
    widths = [sum(g['family'] == f for g in groups.values())
              for f in families]
    fig, axes = plt.subplots(
        1, len(families), squeeze=False, sharey=True,
        gridspec_kw=dict(width_ratios=widths),
        figsize=(1.3 * sum(widths) + 2.5, 4.2))
    top = max(g['mAP']['mean'] + (g['mAP']['std'] or 0)
              for g in groups.values())
    for axis, family in zip(axes[0], families):
        _plot_family(axis, {n: g for n, g in groups.items()
                            if g['family'] == family}, family)
    axes[0][0].set_ylabel('bbox mAP on val (COCO, %)')
    axes[0][0].set_ylim(0, max(top, 1.0) * 1.15)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_family(axis, groups: Dict[str, dict], family: str) -> None:
    colours = dict(teacher='#4c4c4c', baseline='#a6a6a6',
                   distilled='#1f77b4')
    names = list(groups)
    means = [groups[n]['mAP']['mean'] for n in names]
    spreads = [groups[n]['mAP']['std'] or 0 for n in names]
    bars = axis.bar(names, means, yerr=spreads, capsize=3,
                    color=[colours[groups[n]['role']] for n in names])
    for name, group in groups.items():
        if group['role'] == 'teacher':
            axis.axhline(group['mAP']['mean'], color=colours['teacher'],
                         linestyle='--', linewidth=1)
        elif group['role'] == 'baseline':
            axis.axhline(group['mAP']['mean'], color=colours['baseline'],
                         linestyle=':', linewidth=1.5)
    for bar, value in zip(bars, means):
        axis.annotate(f'{value:.1f}', (bar.get_x() + bar.get_width() / 2,
                                       value), ha='center', va='bottom',
                      xytext=(0, 2), textcoords='offset points', fontsize=8)
    axis.set_title(family, fontsize=9)
    axis.tick_params(axis='x', labelrotation=30, labelsize=8)
