# Copyright (c) mmkd_plugin contributors.
"""Statistics, table and chart of the efficacy benchmark.

A *group* is one row of the table: a family's teacher, its student
baseline, the baseline trained twice as long (the convergence check), the
init-only control (the baseline with a distilled config's initialisation
from the teacher and no distillation loss), or one distilled student. Each
group holds the score (the task's metric: COCO bbox mAP for detection,
top-1 accuracy for classification) of every seed it was trained with. A
distilled student is compared with its baseline (and control) seed by seed:
the paired difference of seed k is its score minus the baseline's score of
seed k, and a
gain counts as clear when the mean paired difference exceeds twice their
sample standard deviation. Distilled rows are also paired with the baseline
trained twice as long: a gain that survives that comparison is not just
faster convergence.
"""
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional

ROLES = ('teacher', 'baseline', 'baseline_2x', 'control', 'distilled')


@dataclass
class Group:
    """One table row.

    Args:
        name (str): Row name (the run name of seed 0).
        family (str): Model family, e.g. ``'retina'``.
        role (str): One of :data:`ROLES`.
        model (str): What is trained, in words.
        scores (dict[int, float]): The task's metric per seed (percent),
            on the reported split.
        control (str, optional): Name of the init-only control group of a
            distilled row whose config starts student modules from the
            teacher.
    """
    name: str
    family: str
    role: str
    model: str
    scores: Dict[int, float] = field(default_factory=dict)
    control: Optional[str] = None


def mean_std(values: List[float]) -> Dict[str, Optional[float]]:
    """Mean and sample standard deviation (None for fewer than 2)."""
    return dict(mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else None)


def paired(group: Group, reference: Group) -> Optional[dict]:
    """Per-seed differences ``group - reference`` on the seeds both have.

    Returns:
        dict | None: ``diffs`` (by seed), their ``mean`` and ``std`` and
        ``clear`` (mean > 2 std, needs 2 seeds or more); None without a
        shared seed.
    """
    seeds = sorted(set(group.scores) & set(reference.scores))
    if not seeds:
        return None
    diffs = {seed: group.scores[seed] - reference.scores[seed]
             for seed in seeds}
    stats = mean_std(list(diffs.values()))
    clear = stats['std'] is not None and stats['mean'] > 2 * stats['std']
    return dict(diffs=diffs, clear=clear, **stats)


def family_member(groups: List[Group], family: str,
                  role: str) -> Optional[Group]:
    """The first group of ``family`` with ``role``."""
    return next((g for g in groups
                 if g.family == family and g.role == role), None)


def summarise(groups: List[Group]) -> Dict[str, dict]:
    """Every row's statistics.

    Returns:
        dict[str, dict]: By group name: ``score`` (mean, std), and for
        distilled rows ``gain`` (mean minus the baseline's mean),
        ``gap_recovered`` (gain / (teacher - baseline); None when the
        teacher is not above the baseline), ``vs_baseline`` and
        ``vs_control`` (:func:`paired`), and ``vs_baseline_2x`` (paired
        with the baseline trained twice as long, None without it); for
        the 2x baseline ``gain`` over the baseline.
    """
    by_name = {g.name: g for g in groups}
    summary = {}
    for group in groups:
        row = dict(score=mean_std(list(group.scores.values())), gain=None,
                   gap_recovered=None, vs_baseline=None, vs_control=None,
                   vs_baseline_2x=None)
        baseline = family_member(groups, group.family, 'baseline')
        baseline_2x = family_member(groups, group.family, 'baseline_2x')
        teacher = family_member(groups, group.family, 'teacher')
        if group.role in ('distilled', 'control', 'baseline_2x') and \
                baseline is not None:
            gain = row['score']['mean'] - statistics.fmean(
                baseline.scores.values())
            row['gain'] = gain
            row['vs_baseline'] = paired(group, baseline)
            if teacher is not None:
                gap = statistics.fmean(teacher.scores.values()) - \
                    statistics.fmean(baseline.scores.values())
                row['gap_recovered'] = gain / gap if gap > 0 else None
        if group.control is not None and group.control in by_name:
            row['vs_control'] = paired(group, by_name[group.control])
        if group.role == 'distilled' and baseline_2x is not None:
            row['vs_baseline_2x'] = paired(group, baseline_2x)
        summary[group.name] = row
    return summary


def _mean_text(stats: Optional[dict]) -> str:
    if stats is None:
        return '—'
    if stats['std'] is None:
        return f'{stats["mean"]:.1f}'
    return f'{stats["mean"]:.1f} ± {stats["std"]:.1f}'


def _paired_text(stats: Optional[dict]) -> str:
    if stats is None:
        return '—'
    diffs = ', '.join(f'{d:+.1f}' for d in stats['diffs'].values())
    mark = ' ✓' if stats['clear'] else ''
    if stats['std'] is None:
        return f'{stats["mean"]:+.1f} ({diffs})'
    return f'{stats["mean"]:+.1f} ± {stats["std"]:.1f} ({diffs}){mark}'


def markdown_table(groups: List[Group], split: str,
                   score_name: str = 'mAP') -> str:
    """The results as a markdown table, one row per group.

    Columns: mean ± std of the score (``score_name`` in the header) over
    the seeds, the per-seed scores, the gain
    over the baseline's mean, the share of the teacher-baseline gap
    recovered, and the paired differences with the baseline, with the
    baseline trained twice as long and with the init-only control (mean ±
    std, the per-seed values; ✓ where the mean exceeds twice the std).
    """
    summary = summarise(groups)
    header = ['run', 'model', 'seeds', f'{split} {score_name}', 'per seed',
              'gain', 'gap recovered', 'paired vs baseline',
              'paired vs 2x baseline', 'paired vs control']
    lines = ['| ' + ' | '.join(header) + ' |',
             '|---|---|---:|---:|---|---:|---:|---|---|---|']
    for group in groups:
        row = summary[group.name]
        share = row['gap_recovered']
        cells = [group.name, group.model, str(len(group.scores)),
                 _mean_text(row['score']),
                 ', '.join(f'{v:.1f}'
                           for _, v in sorted(group.scores.items())),
                 '—' if row['gain'] is None else f'{row["gain"]:+.1f}',
                 '—' if share is None else f'{100 * share:.0f}%',
                 _paired_text(row['vs_baseline']),
                 _paired_text(row['vs_baseline_2x']),
                 _paired_text(row['vs_control'])]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def plot_scores(groups: List[Group], path: str, title: str, split: str,
                axis_label: str = 'bbox mAP on {split} (COCO, %)') -> None:
    """Bar chart of the mean score per group with its std as error bars
    and every seed as a dot; the teacher and the baseline as lines.
    ``axis_label`` is the y label, ``{split}`` filled in."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    summary = summarise(groups)
    colours = dict(teacher='#4c4c4c', baseline='#a6a6a6',
                   baseline_2x='#d0d0d0', control='#e39c5c',
                   distilled='#1f77b4')
    names = [g.name for g in groups]
    means = [summary[n]['score']['mean'] for n in names]
    stds = [summary[n]['score']['std'] or 0.0 for n in names]
    fig, axis = plt.subplots(figsize=(1.1 * len(groups) + 2.5, 4.2))
    bars = axis.bar(names, means, yerr=stds, capsize=3,
                    color=[colours[g.role] for g in groups])
    for index, group in enumerate(groups):
        axis.plot([index] * len(group.scores), list(group.scores.values()),
                  'k.', markersize=4)
        if group.role in ('teacher', 'baseline'):
            axis.axhline(summary[group.name]['score']['mean'],
                         color=colours[group.role], linewidth=1,
                         linestyle='--' if group.role == 'teacher' else ':')
    for bar, value in zip(bars, means):
        axis.annotate(f'{value:.1f}', (bar.get_x() + bar.get_width() / 2,
                                       value), ha='center', va='bottom',
                      xytext=(0, 2), textcoords='offset points', fontsize=8)
    low = min(min(g.scores.values()) for g in groups)
    high = max(max(g.scores.values()) for g in groups)
    margin = max(2.0, 0.15 * (high - low))
    axis.set_ylim(max(0.0, low - margin), high + margin)
    axis.set_ylabel(axis_label.format(split=split))
    axis.tick_params(axis='x', labelrotation=30, labelsize=8)
    axis.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
