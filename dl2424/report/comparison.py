"""Figures that compare runs as wholes (DD2424 Assignment 3, 2026: the architecture sweep's
bar charts of test accuracy and training time, and the label-smoothing pair's loss curves
and true-class probabilities side by side).

Runs that differ only in `seed` (and `name`) form one group: its bar is their mean, its
error bar spans their lowest and highest value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .. import rundir
from .figures import COLORS, SPLIT_COLOR, SPLIT_NAME, Plot, _save
from .load import Run
from .tables import differing_keys, flatten_all, leaf_text, short_names

IGNORED = ("seed", "name")  # keys that never make two runs different settings
MAX_PANELS = 4  # loss panels side by side


def setting_labels(runs: list[Run], ignored=("name",)) -> list[str]:
    """'f=4, nf=10' per run from the config keys whose values differ (`differing_keys`: a
    key a run lacks counts as its default), a key's last part alone when unambiguous."""
    keys = differing_keys([r.config for r in runs], ignored)
    flat = flatten_all([r.config for r in runs])
    short = short_names(keys)
    return [", ".join(f"{short[k]}={leaf_text(f.get(k))}" for k in keys) or run.name
            for run, f in zip(runs, flat, strict=True)]


def groups(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """(label, runs) per setting: runs whose configs differ only in IGNORED share one."""
    out: dict[str, list[Run]] = {}
    for run, label in zip(runs, setting_labels(runs, IGNORED), strict=True):
        out.setdefault(label, []).append(run)
    return list(out.items())


def _test_acc(run: Run) -> float | None:
    return (run.summary.get("test") or {}).get("acc")


def _bar(ax, labels, values, color, ylabel, fmt):
    """One bar per group at its mean; groups of several runs get a min-max error bar."""
    means = np.array([np.mean(v) for v in values])
    x = np.arange(len(labels))
    ax.bar(x, means, color=color)
    for xi, m, v in zip(x, means, values, strict=True):
        top = max(v)
        if len(v) > 1:
            ax.errorbar(xi, m, yerr=[[m - min(v)], [top - m]], color="black", capsize=4)
        ax.annotate(fmt(m) + (f" ({len(v)} runs)" if len(v) > 1 else ""), (xi, top),
                    textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    rotate = len(labels) > 3
    ax.set_xticks(x, labels, rotation=20 if rotate else 0, ha="right" if rotate else "center",
                  fontsize=8)
    ax.set(ylabel=ylabel)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)


def bars_figure(runs: list[Run], out: Path) -> Plot | None:
    """Test accuracy and training time per setting, when two or more settings have both."""
    found = [(label, [(a, r.summary["wall_time_s"]) for r in rs
                      if (a := _test_acc(r)) is not None and "wall_time_s" in r.summary])
             for label, rs in groups(runs)]
    found = [(label, pairs) for label, pairs in found if pairs]
    if len(found) < 2:
        return None
    labels = [label for label, _ in found]
    fig = Figure(figsize=(max(8.0, 2.2 * len(labels)), 4.2), layout="constrained")
    ax_acc, ax_time = fig.subplots(1, 2)
    _bar(ax_acc, labels, [[100 * a for a, _ in p] for _, p in found], COLORS[0],
         "test accuracy (%)", lambda v: f"{v:.2f}%")
    _bar(ax_time, labels, [[t for _, t in p] for _, p in found], COLORS[1],
         "training wall time (s)", lambda v: f"{v:.0f} s")
    ax_acc.set_title("final test accuracy")
    ax_time.set_title("training time (whole run)")
    caption = ("Per setting, in the order the runs were given (runs differing only in seed "
               "are one bar: their mean, with the lowest and highest as error bar): test "
               "accuracy of the final parameters and the run's wall time (summary.json), "
               "evaluations included.")
    return _save(fig, out, "bars.png", "Test accuracy and training time", caption)


def loss_panels_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    """Each run's training and validation loss in its own panel, on one shared y axis."""
    if not 2 <= len(runs) <= MAX_PANELS:
        return None
    fig = Figure(figsize=(4.2 * len(runs) + 0.6, 3.8), layout="constrained")
    axes = fig.subplots(1, len(runs), sharey=True)
    for ax, run, label in zip(axes, runs, labels, strict=True):
        steps = [r["step"] for r in run.rows]
        for split in ("train", "val"):
            ax.plot(steps, [r[f"{split}_loss"] for r in run.rows], color=SPLIT_COLOR[split],
                    label=SPLIT_NAME[split])
        ax.set(xlabel="update step", title=label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss (mean per example)")
    axes[0].legend(fontsize=8)
    caption = ("Training and validation loss of each run in its own panel (same y axis): the "
               "gap between the curves shows how much each run overfits.")
    return _save(fig, out, "loss_panels.png", "Loss curves side by side", caption)


def true_class_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    """The distribution of the probability given to the true class, all runs on one axis."""
    found = [(label, p) for run, label in zip(runs, labels, strict=True)
             if (got := rundir.read_predictions(run.path)) is not None for p in [got[0]]]
    if not 2 <= len(found) <= len(COLORS):
        return None
    fig = Figure(figsize=(7.0, 3.8), layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(0, 1, 41)
    for i, (label, p) in enumerate(found):
        ax.hist(p, bins, histtype="step", linewidth=1.6, color=COLORS[i],
                label=f"{label} (median {np.median(p):.2f})")
    ax.set(xlabel="probability of the true class", ylabel="test examples", yscale="log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    caption = ("Every test example's probability of its true class (predictions_test.csv), "
               "one outline per run; label smoothing keeps the confident end below 1.")
    return _save(fig, out, "true_class.png", "True-class probability per run", caption)


def draw_comparison(runs: list[Run], out: Path) -> list[Plot]:
    """The comparison figures the runs have data for (none for a single run)."""
    if len(runs) < 2:
        return []
    labels = setting_labels(runs)
    drawn = [bars_figure(runs, out), loss_panels_figure(runs, labels, out),
             true_class_figure(runs, labels, out)]
    return [p for p in drawn if p is not None]
