"""The sweep's figures: the metric of every ok trial against each searched key.

The x axis is logarithmic for log_uniform and log_grid keys;
values that are not numbers (a choice of lists, of names) get one row each, in the order
the space lists them, with the metric along the x axis.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from matplotlib.figure import Figure

from ..atomic import atomic_open
from .sample import finite_values
from .spec import FINITE, LogGrid, LogUniform
from .sweep import Sweep, format_value

# Searched keys by what the course calls them; any other key is shown as it is spelled.
KEY_LABELS = {
    "model.l2": "λ (model.l2, L2 penalty)", "optimizer.lr": "η (optimizer.lr)",
    "schedule.eta_min": "η_min (schedule.eta_min)", "schedule.eta_max": "η_max (schedule.eta_max)",
    "schedule.n_s": "n_s (schedule.n_s, steps per half cycle)",
    "train.batch_size": "mini-batch size (train.batch_size)",
    "model.keep": "dropout keep probability (model.keep)",
    "model.hidden": "hidden layer widths (model.hidden)",
}
SPLIT_NAMES = {"val": "validation", "train": "training", "test": "test"}


def key_label(key: str) -> str:
    return KEY_LABELS.get(key, key)


def metric_label(metric: str, metric_from: str) -> str:
    """val_acc, best -> 'validation accuracy (%), best evaluation'."""
    split, _, what = metric.partition("_")
    what = {"acc": "accuracy (%)", "loss": "loss", "cost": "cost"}.get(what, what)
    when = "best evaluation" if metric_from == "best" else "last evaluation"
    return f"{SPLIT_NAMES.get(split, split)} {what}, {when}"


def _scale(metric: str) -> float:
    """Accuracies in percent, as in every other figure and table."""
    return 100.0 if metric.endswith("acc") else 1.0


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric_axis(ax, sweep: Sweep, key: str, xs: list, ys: list) -> None:
    ax.scatter(xs, ys, s=28, alpha=0.8, label="trials")
    ax.scatter(xs[:1], ys[:1], s=90, marker="*", color="C3", zorder=3, label="best")
    if isinstance(sweep.spec.space[key], (LogUniform, LogGrid)):
        ax.set_xscale("log")
    ax.set_xlabel(key_label(key))
    ax.set_ylabel(metric_label(sweep.spec.metric, sweep.spec.metric_from))


def _labels(sweep: Sweep, key: str, xs: list) -> list[str]:
    """Every value of a finite key in the space's order (then any others seen), as text."""
    dist = sweep.spec.space[key]
    listed = [format_value(v) for v in finite_values(dist)] if isinstance(dist, FINITE) else []
    return list(dict.fromkeys(listed + [format_value(x) for x in xs]))


def _category_axis(ax, sweep: Sweep, key: str, xs: list, ys: list) -> None:
    """Values that are not numbers: one row per value, the metric along the x axis."""
    labels = _labels(sweep, key, xs)
    pos = [labels.index(format_value(x)) for x in xs]
    ax.scatter(ys, pos, s=28, alpha=0.8, label="trials")
    ax.scatter(ys[:1], pos[:1], s=90, marker="*", color="C3", zorder=3, label="best")
    ax.set_yticks(range(len(labels)), [textwrap.fill(s, 48) for s in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_ylabel(key_label(key))
    ax.set_xlabel(metric_label(sweep.spec.metric, sweep.spec.metric_from))


def _figure(sweep: Sweep, key: str) -> Figure:
    ranked = sweep.ranked()
    xs = [t.values[key] for t in ranked]
    ys = [_scale(sweep.spec.metric) * sweep.score(t) for t in ranked]
    numeric = all(_is_number(x) for x in xs)
    rows = 0 if numeric else len(_labels(sweep, key, xs))
    fig = Figure(figsize=(7.5 if rows else 5.5, max(3.8, 0.45 * rows + 1.2)),
                 layout="constrained")
    ax = fig.subplots()
    (_numeric_axis if numeric else _category_axis)(ax, sweep, key, xs, ys)
    ax.set_title(f"{sweep.path.name}: {len(ranked)} trials", fontsize=9)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def plot_sweep(sweep: Sweep) -> list[Path]:
    """Write plots/<metric>_vs_<key>.png for every searched key; returns the files."""
    if not sweep.ranked():
        return []
    out = sweep.path / "plots"
    out.mkdir(exist_ok=True)
    files = []
    for key in sweep.spec.space:
        buf = io.BytesIO()
        _figure(sweep, key).savefig(buf, format="png", dpi=110)
        file = out / f"{sweep.spec.metric}_vs_{key}.png"
        with atomic_open(file, "wb", fsync=False) as f:
            f.write(buf.getvalue())
        files.append(file)
    return files
