"""The report's figures, one PNG each. Drawn with matplotlib's object API on the Agg canvas:
no pyplot state, no display. One run: colours mean splits. Several runs: colours mean runs,
line styles mean splits (train dashed, validation solid), labels from the differing keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from pydantic import ValidationError

from .. import rundir, schedules  # noqa: F401  (registers the schedules the lr plot redraws)
from ..registry import SCHEDULES
from .load import Run
from .tables import per_class_series

DPI = 100
CURVE_SIZE = (11.0, 4.2)  # inches, for the loss / accuracy / lr figures
COLORS = matplotlib.colormaps["tab10"].colors
SPLIT_COLOR = {"train": COLORS[0], "val": COLORS[1]}
SPLIT_NAME = {"train": "training", "val": "validation"}
SPLIT_STYLE = {"train": "--", "val": "-"}
MAX_STRIP = 6  # panels in the confusion strip over training


@dataclass
class Plot:
    file: str
    title: str
    caption: str


def _save(fig: Figure, out: Path, file: str, title: str, caption: str) -> Plot:
    fig.savefig(out / file, dpi=DPI)
    return Plot(file, title, caption)


def _color(i: int):
    return COLORS[i % len(COLORS)]


def _markers(run: Run) -> dict:
    """Dots on the curve when there are few evaluations, so a single one is visible."""
    return {"marker": "o", "markersize": 3} if len(run.rows) <= 30 else {}


def _epoch_axis(ax, runs: list[Run]) -> None:
    """Epochs on a top axis, when every run has the same number of steps per epoch."""
    spe = {r.steps_per_epoch for r in runs}
    if len(spe) == 1 and None not in spe:
        (n,) = spe
        top = ax.secondary_xaxis("top", functions=(lambda s: s / n, lambda e: e * n))
        top.set_xlabel("epoch")


def _legend(fig: Figure, ax, runs: list[Run], labels: list[str], extra=()) -> None:
    if len(runs) == 1:
        ax.legend(loc="best", fontsize=9)
        return
    handles = [Line2D([], [], color=_color(i), lw=2, label=lab) for i, lab in enumerate(labels)]
    handles += [Line2D([], [], color="0.3", ls=SPLIT_STYLE[s], label=SPLIT_NAME[s])
                for s in ("train", "val")]
    fig.legend(handles=handles + list(extra), loc="outside lower center",
               ncols=min(len(handles) + len(extra), 4), fontsize=9)


def _split_lines(ax, runs: list[Run], metric: str, scale: float = 1.0) -> None:
    for i, run in enumerate(runs):
        m = run.metrics
        for split in ("train", "val"):
            color = SPLIT_COLOR[split] if len(runs) == 1 else _color(i)
            ax.plot(m["step"], scale * m[f"{split}_{metric}"], color=color,
                    ls=SPLIT_STYLE[split], label=SPLIT_NAME[split], **_markers(run))


def _clip_blowup(ax, runs: list[Run], keys: list[str], factor: float = 10.0) -> None:
    """Keep a diverging run (loss 1e28 at the end) from flattening every other curve:
    cap the y axis at `factor` times the largest first-evaluation value. The note saying
    so sits above the axes (right-aligned title), never over the curves."""
    first = [v for run in runs for v in run.metrics[keys].iloc[0] if math.isfinite(v)]
    values = [v for run in runs for v in run.metrics[keys].to_numpy().ravel()]
    if not first:
        return
    cap = factor * max(first)
    if any(not math.isfinite(v) or v > cap for v in values):
        lo = min(v for v in values if math.isfinite(v))
        ax.set_ylim(lo - 0.05 * (cap - lo), cap)
        ax.set_title(f"values above {cap:.3g} are off the top", loc="right", fontsize=8,
                     color="0.3")


def _has_l2(runs: list[Run]) -> bool:
    return any("train_cost" in run.metrics
               and (run.metrics["train_cost"] - run.metrics["train_loss"]).abs().max() > 1e-12
               for run in runs)


def loss_figure(runs: list[Run], labels: list[str], out: Path) -> Plot:
    """Loss, and cost = loss + lambda * sum ||W||^2 when they differ, against update step."""
    panels = ["loss", "cost"] if _has_l2(runs) else ["loss"]
    fig = Figure(figsize=CURVE_SIZE, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    names = {"loss": "loss (mean per example)", "cost": "cost = loss + λ·Σ‖W‖²"}
    for ax, metric in zip(axes, panels, strict=True):
        _split_lines(ax, runs, metric)
        _clip_blowup(ax, runs, [f"train_{metric}", f"val_{metric}"])
        ax.set(xlabel="update step", ylabel=names[metric])
        ax.set_title(f"{metric}: training and validation", loc="left")
        ax.grid(alpha=0.3)
        _epoch_axis(ax, runs)
    _legend(fig, axes[0], runs, labels)
    caption = ("Loss (and cost, which adds the L2 term) on the training set (dashed) and "
               "the validation set (solid), measured at every evaluation.")
    return _save(fig, out, "loss.png", "Loss and cost", caption)


def accuracy_figure(runs: list[Run], labels: list[str], out: Path) -> Plot:
    fig = Figure(figsize=CURVE_SIZE, layout="constrained")
    ax = fig.subplots()
    _split_lines(ax, runs, "acc", scale=100)
    extra_handles, extra_keys = [], []
    for i, run in enumerate(runs):
        m = run.metrics
        for k in [k for k in m if k.startswith("val_") and k.endswith("_acc") and k != "val_acc"]:
            if k not in extra_keys:
                extra_keys.append(k)
            color = COLORS[2] if len(runs) == 1 else _color(i)
            ax.plot(m["step"], 100 * m[k], color=color, ls=":", label=k.replace("_", " "))
        test = (run.summary.get("test") or {}).get("acc")
        if test is not None:
            color = COLORS[3] if len(runs) == 1 else _color(i)
            ax.plot([run.rows[-1]["step"]], [100 * test], "*", color=color, markersize=12,
                    label="test (final)")
    has_test = any("test" in r.summary for r in runs)
    if len(runs) > 1:
        extra_handles += [Line2D([], [], color="0.3", ls=":", label=k.replace("_", " "))
                          for k in extra_keys]
        if has_test:
            extra_handles.append(Line2D([], [], marker="*", ls="", color="0.3",
                                        markersize=10, label="test (final)"))
    ax.set(xlabel="update step", ylabel="accuracy (%)",
           title="accuracy: training and validation")
    ax.grid(alpha=0.3)
    _epoch_axis(ax, runs)
    _legend(fig, ax, runs, labels, extra_handles)
    caption = ("Classification accuracy on the training set (dashed) and the validation set "
               "(solid)")
    if extra_keys:
        caption += ("; dotted: " + ", ".join(k.replace("_", " ") for k in extra_keys)
                    + " (val unseen = validation names that do not occur in the training part)")
    if has_test:
        caption += "; a star marks the test accuracy of the final parameters"
    caption += "."
    return _save(fig, out, "accuracy.png", "Accuracy", caption)


def is_uva(run: Run) -> bool:
    """A run of the UvA assignment configs (configs/uva_*.yaml)."""
    return run.name.lower().startswith("uva")


def uva_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    """The UvA assignment's two plots side by side, every run of the report in them: loss
    over training steps (training dashed, validation solid) and validation accuracy over
    training steps, the final test accuracy as a star. Drawn when a UvA run is reported."""
    if not any(is_uva(run) for run in runs):
        return None
    fig = Figure(figsize=CURVE_SIZE, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, run in enumerate(runs):
        steps = [r["step"] for r in run.rows]
        color = _color(i)
        for split in ("train", "val"):
            ax_loss.plot(steps, [r[f"{split}_loss"] for r in run.rows], color=color,
                         ls=SPLIT_STYLE[split], **_markers(run))
        ax_acc.plot(steps, [100 * r["val_acc"] for r in run.rows], color=color,
                    **_markers(run))
        test = (run.summary.get("test") or {}).get("acc")
        if test is not None:
            ax_acc.plot([steps[-1]], [100 * test], "*", color=color, markersize=12)
    ax_loss.set(xlabel="training step (mini-batch updates)", ylabel="loss (mean per example)",
                title="loss")
    ax_acc.set(xlabel="training step (mini-batch updates)", ylabel="accuracy (%)",
               title="validation accuracy (★ test accuracy at the end)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=_color(i), lw=2, label=lab) for i, lab in enumerate(labels)]
    handles += [Line2D([], [], color="0.3", ls=SPLIT_STYLE[s], label=SPLIT_NAME[s])
                for s in ("train", "val")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
               fontsize=9)
    caption = ("The UvA assignment's curves for every run: loss on the training (dashed) and "
               "validation (solid) sets, and validation accuracy, at each evaluation over "
               "the training steps; a star marks the test accuracy of the final parameters.")
    return _save(fig, out, "uva_curves.png", "UvA curves: loss and accuracy over steps",
                 caption)


# ---------------------------------------------------------------------------- learning rate

def schedule_curve(run: Run, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray] | None:
    """The learning rate at every update step, recomputed from the run's schedule config;
    None when the config cannot be replayed (then the plot uses the logged lr values)."""
    sched = run.config.get("schedule") or {}
    kind = sched.get("type") if isinstance(sched, dict) else sched
    total, spe = run.summary.get("total_steps"), run.steps_per_epoch
    if kind not in SCHEDULES or not total or not spe:
        return None
    entry = SCHEDULES[kind]
    try:
        p = entry.params.model_validate({k: v for k, v in (sched if isinstance(sched, dict)
                                                           else {}).items() if k != "type"})
    except ValidationError:
        return None
    lr = (run.config.get("optimizer") or {}).get("lr")
    f = entry.factory(p, base_lr=lr, steps_per_epoch=spe, total_steps=total)
    if f.needs_base_lr and lr is None:
        return None
    t = np.unique(np.linspace(0, total - 1, min(total, max_points)).round().astype(int))
    return t, np.array([f(int(s)) for s in t])


def _exponential_sweep(run: Run) -> bool:
    """An LR range test with exponential spacing: its lr is best read on a log axis."""
    sched = run.config.get("schedule")
    return isinstance(sched, dict) and sched.get("type") == "range_test" \
        and sched.get("spacing", "exp") == "exp"


def constant_lr(runs: list[Run]) -> float | None:
    """The learning rate when every run kept the same one throughout, else None."""
    values = {r["lr"] for run in runs for r in run.rows}
    if len(values) != 1:
        return None
    curves = [schedule_curve(run) for run in runs]
    if any(c is not None and np.ptp(c[1]) > 0 for c in curves):
        return None
    return values.pop()


def lr_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    """η against the update step; None (a sentence in the report instead) when constant."""
    if constant_lr(runs) is not None:
        return None
    fig = Figure(figsize=CURVE_SIZE, layout="constrained")
    ax = fig.subplots()
    values = []
    for i, run in enumerate(runs):
        color = COLORS[0] if len(runs) == 1 else _color(i)
        curve = schedule_curve(run)
        if curve is not None:
            ax.plot(*curve, color=color, label="η(t), from the config")
            values.extend(curve[1])
        steps, logged = run.metrics["step"], list(run.metrics["lr"])
        ax.plot(steps, logged, "o", color=color, markersize=3, label="at evaluations (logged)",
                ls="" if curve is not None else "-")
        values.extend(logged)
    positive = [v for v in values if v > 0]
    if any(_exponential_sweep(run) for run in runs):
        ax.set_yscale("log")
    elif positive:
        ax.set_ylim(0, 1.15 * max(positive))
    ax.set(xlabel="update step", ylabel="learning rate η", title="learning-rate schedule")
    ax.grid(alpha=0.3)
    _epoch_axis(ax, runs)
    if len(runs) == 1:
        ax.legend(loc="best", fontsize=9)
    else:
        fig.legend(handles=[Line2D([], [], color=_color(i), lw=2, label=lab)
                            for i, lab in enumerate(labels)],
                   loc="outside lower center", ncols=min(len(runs), 4), fontsize=9)
    caption = ("Learning rate η at each update step, recomputed from the schedule in "
               "config.yaml; dots are the values logged at evaluations.")
    return _save(fig, out, "lr.png", "Learning-rate schedule", caption)


def lr_range_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    """LR range test (Smith 2015): loss and accuracy against η, suggested bounds marked."""
    tests = [(run, label, run.extra("lr_range.json")) for run, label in
             zip(runs, labels, strict=True) if run.file("lr_range.json").is_file()]
    if not tests:
        return None
    fig = Figure(figsize=CURVE_SIZE, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, (run, label, info) in enumerate(tests):
        m = run.metrics
        for ax, metric, scale in ((ax_loss, "loss", 1), (ax_acc, "acc", 100)):
            for split in ("train", "val"):
                color = SPLIT_COLOR[split] if len(tests) == 1 else _color(i)
                name = SPLIT_NAME[split] if len(tests) == 1 else f"{label}: {SPLIT_NAME[split]}"
                ax.plot(m["lr"], scale * m[f"{split}_{metric}"], color=color,
                        ls=SPLIT_STYLE[split], label=name, **_markers(run))
            for key, ls in (("eta_min", ":"), ("eta_max", "-.")):
                v = _suggested(info, key)
                if v is not None:
                    ax.axvline(v, color="0.2" if len(tests) == 1 else _color(i), ls=ls, lw=1.2,
                               label=f"suggested η_{key[4:]} = {v:.3g}")
    # The useful band is where the loss falls below its starting value; past eta_max it
    # explodes, and an axis up to 10x the start would squash the band into a flat line.
    _clip_blowup(ax_loss, [t[0] for t in tests], ["train_loss", "val_loss"], factor=1.5)
    for ax, name in ((ax_loss, "loss (mean per example)"), (ax_acc, "accuracy (%)")):
        ax.set_xscale("log")
        ax.set(xlabel="learning rate η (log scale)", ylabel=name)
        ax.set_title(f"{name.split(' (')[0]} against η", loc="left")
        ax.grid(alpha=0.3, which="both")
    ax_loss.legend(fontsize=8, loc="lower left")
    fig.suptitle("learning-rate range test")
    caption = ("Learning-rate range test: η grows at every step; the dotted and dash-dotted "
               "lines mark the suggested eta_min and eta_max for a cyclical schedule.")
    return _save(fig, out, "lr_range.png", "Learning-rate range test", caption)


def _suggested(info, key: str) -> float | None:
    """eta_min / eta_max from lr_range.json, at the top level or under 'suggested'."""
    if not isinstance(info, dict):
        return None
    v = info.get(key, (info.get("suggested") or {}).get(key))
    return float(v) if isinstance(v, int | float) else None


# ---------------------------------------------------------------------------- confusion

def _heatmap(ax, matrix: np.ndarray, names: list[str], normalised: bool, annotate: bool,
             ylabels: bool = True):
    """One confusion heat map; rows = true class, columns = predicted class. The cells are
    as tall as they are wide because the figure is sized so (`_cell_inches`), not through
    a fixed aspect, which constrained layout cannot place labels around."""
    K = len(names)
    if normalised:
        n = matrix.sum(axis=1, keepdims=True)
        data = 100 * np.divide(matrix, n, out=np.zeros(matrix.shape), where=n > 0)
        im = ax.imshow(data, cmap="Blues", vmin=0, vmax=100, aspect="auto")
    else:
        data = matrix
        im = ax.imshow(data, cmap="Blues", vmin=0, aspect="auto")
    ax.set_xticks(range(K), names, rotation=60, ha="right", rotation_mode="anchor",
                  fontsize=9)
    ax.set_yticks(range(K), names if ylabels else [], fontsize=9)
    ax.set_xlabel("predicted class")
    if ylabels:
        ax.set_ylabel("true class")
    if annotate:
        top = data.max() if data.size else 0
        size = 9 if K <= 10 else 8
        for (i, j), v in np.ndenumerate(data):
            text = f"{v:.0f}" if normalised else f"{int(v)}"
            ax.text(j, i, text, ha="center", va="center", fontsize=size,
                    color="white" if v > 0.55 * top else "black", in_layout=False)
    return im


def _cell_inches(K: int) -> float:
    """Side of one cell: room for a 3-digit number at 8-9 pt."""
    return 0.55 if K <= 10 else 0.4


LABEL_MARGIN = (1.6, 1.4)  # inches for the class names and axis label: left, below


def confusion_figure(runs: list[Run], labels: list[str], split: str, out: Path) -> Plot | None:
    """One run: counts and row-normalised side by side. Several: row-normalised per run."""
    found = [(run, label, run.confusion(split)) for run, label in
             zip(runs, labels, strict=True)]
    found = [f for f in found if f[2] is not None]
    if not found:
        return None
    where = {"val": "validation set, last evaluation",
             "test": "test set, final parameters"}[split]
    K = len(found[0][2][0])
    grid = K * _cell_inches(K)
    panel_w, panel_h = grid + LABEL_MARGIN[0] + 1.3, grid + LABEL_MARGIN[1] + 0.4
    if len(runs) == 1:
        names, matrix = found[0][2]
        if K <= 12:  # side by side; many classes: one above the other, to stay legible
            fig = Figure(figsize=(2 * panel_w, panel_h + 0.5), layout="constrained")
            a, b = fig.subplots(1, 2)
        else:
            fig = Figure(figsize=(panel_w, 2 * panel_h + 0.5), layout="constrained")
            a, b = fig.subplots(2, 1)
        fig.colorbar(_heatmap(a, matrix, names, False, K <= 20), ax=a, label="examples")
        fig.colorbar(_heatmap(b, matrix, names, True, K <= 20), ax=b,
                     label="% of the true class")
        a.set_title("counts")
        b.set_title("row-normalised (% of each true class)")
        fig.suptitle(f"confusion matrix — {where}")
    else:
        n = len(found)
        fig = Figure(figsize=(n * (grid + 0.4) + LABEL_MARGIN[0] + 1.3, panel_h + 0.5),
                     layout="constrained")
        axes = fig.subplots(1, n, squeeze=False)[0]
        for k, (ax, (_, label, (names, matrix))) in enumerate(zip(axes, found, strict=True)):
            im = _heatmap(ax, matrix, names, True, K <= 12, ylabels=k == 0)
            ax.set_title(label, fontsize=9, color=_color(runs.index(found[k][0])))
        fig.colorbar(im, ax=list(axes), label="% of the true class")
        fig.suptitle(f"row-normalised confusion matrices — {where}")
    caption = (f"Confusion matrix on the {where}: row i, column j counts examples of true "
               "class i predicted as class j; row-normalised cells are per-class rates (%).")
    return _save(fig, out, f"confusion_{split}.png", f"Confusion matrix ({split})", caption)


def confusion_strip_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    """Row-normalised validation confusions at up to MAX_STRIP evaluations per run. Few
    classes: one row of panels per run; many (K > 12): two panels a row, large enough for
    18 class names at 8 pt."""
    strips = []
    for run, label in zip(runs, labels, strict=True):
        kept = run.confusions_over_training()
        if len(kept) >= 2:
            panels = MAX_STRIP if len(run.class_names) <= 12 else MAX_STRIP - 2
            pick = np.unique(np.linspace(0, len(kept) - 1, min(panels, len(kept)))
                             .round().astype(int))
            strips.append((run, label, [kept[i] for i in pick]))
    if not strips:
        return None
    names = strips[0][0].class_names
    K = len(names)
    per_row = MAX_STRIP if K <= 12 else 2
    rows = [(run, label, kept[i:i + per_row]) for run, label, kept in strips
            for i in range(0, len(kept), per_row)]
    cols = max(len(r[2]) for r in rows)
    side = 2.6 if K <= 12 else K * _cell_inches(K) * 0.75
    fig = Figure(figsize=(cols * (side + 0.3) + LABEL_MARGIN[0] + 0.8,
                          len(rows) * (side + LABEL_MARGIN[1]) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (run, label, kept) in enumerate(rows):
        spe = run.steps_per_epoch
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(kept):
                ax.set_axis_off()
                continue
            step, matrix = kept[c]
            im = _heatmap(ax, matrix, names, True, False, ylabels=c == 0)
            ax.tick_params(labelsize=8)
            ax.set_xlabel("")
            if c == 0:
                ax.set_ylabel(f"{label}\ntrue class" if len(runs) > 1 else "true class")
            when = f"step {step:,}" + (f" (epoch {_epoch_text(step / spe)})" if spe else "")
            ax.set_title(when, fontsize=10)
    fig.colorbar(im, ax=axes.ravel().tolist(), label="% of the true class", shrink=0.6)
    fig.suptitle("validation confusion over training (row-normalised; x: predicted class)")
    caption = ("How the validation confusion matrix changes during training, at evenly "
               "spaced evaluations (from confusion/val_step*.csv).")
    return _save(fig, out, "confusion_strip.png", "Confusion over training", caption)


def _epoch_text(epoch: float) -> str:
    """1350 -> '1350', 13.5 -> '13.5', 0.25 -> '0.25': never scientific notation."""
    if epoch >= 100 or epoch == int(epoch):
        return f"{epoch:.0f}"
    return f"{epoch:.1f}" if epoch >= 10 else f"{epoch:.2f}"


# ---------------------------------------------------------------------------- per class

def _bar_width(K: int, per_class: int) -> float:
    """Inches for K groups of bars: the curves' width unless the bars would get thin."""
    return max(CURVE_SIZE[0], 0.22 * K * per_class + 2)


PER_CLASS_NAME = {"val_acc": "validation, last evaluation",
                  "best val_acc": "validation, best evaluation",
                  "test_acc": "test, final parameters"}


def per_class_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    names = runs[0].class_names
    if not names or any(r.class_names != names for r in runs):
        return None
    bars = []
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        for j, (key, acc) in enumerate(per_class_series(run).items()):
            if len(runs) == 1:
                bars.append((PER_CLASS_NAME[key], acc, COLORS[j]))
            elif key == "val_acc":
                bars.append((label, acc, _color(i)))
    if not bars:
        return None
    K = len(names)
    fig = Figure(figsize=(_bar_width(K, len(bars)), 4.6), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(bars)
    x = np.arange(K)
    for b, (label, acc, color) in enumerate(bars):
        ax.bar(x - 0.4 + width * (b + 0.5), 100 * np.nan_to_num(acc), width, color=color,
               label=label)
    ax.set_xticks(x, names, rotation=30 if K > 10 else 0, ha="right" if K > 10 else "center")
    ax.set(ylabel="accuracy (%)", ylim=(0, 100),
           title="per-class accuracy" + (" on the validation set (last evaluation)"
                                         if len(runs) > 1 else ""))
    ax.grid(axis="y", alpha=0.3)
    if len(runs) == 1:
        ax.legend(fontsize=9, loc="upper right")
    else:
        fig.legend(loc="outside lower center", ncols=min(len(bars), 4), fontsize=9)
    caption = ("Accuracy per true class: the fraction of each class's examples that the "
               "classifier labels correctly (the diagonal of the row-normalised confusion).")
    return _save(fig, out, "per_class.png", "Per-class accuracy", caption)


def class_counts_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    """Share of each class in the training set and in what the sampler drew (class_counts.json)."""
    counted = [(run, label, run.extra(rundir.CLASS_COUNTS)) for run, label in
               zip(runs, labels, strict=True) if run.file(rundir.CLASS_COUNTS).is_file()]
    if not counted:
        return None
    names = list((counted[0][2].get("train") or {}).keys()) or counted[0][0].class_names
    series = [("training set", counted[0][2].get("train"), "0.55")]
    drawn = []  # runs whose sampler drew the same counts share one series
    for run, _, counts in counted:
        sampled = counts.get("sampled")
        if not sampled or sampled in drawn:
            continue
        drawn.append(sampled)
        same = [lab for _, lab, c in counted if c.get("sampled") == sampled]
        name = ("sampled in training" if len(same) == len(runs) else
                "sampled: " + "; ".join(same))
        series.append((name, sampled,
                       COLORS[1] if len(same) == len(runs) else _color(runs.index(run))))
    K = len(names)
    fig = Figure(figsize=(_bar_width(K, len(series)), 4.6), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(series)
    for b, (label, counts, color) in enumerate(series):
        n = np.array([counts.get(c, 0) for c in names], dtype=float)
        ax.bar(np.arange(K) - 0.4 + width * (b + 0.5), 100 * n / max(n.sum(), 1), width,
               color=color, label=f"{label} (n = {int(n.sum())})")
    ax.axhline(100 / K, color="0.2", ls=":", lw=1, label="uniform")
    ax.set_xticks(np.arange(K), names, rotation=30 if K > 10 else 0,
                  ha="right" if K > 10 else "center")
    ax.set(ylabel="share of examples (%)",
           title="class distribution: training set and mini-batches drawn by the sampler")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(fontsize=9, loc="outside lower center", ncols=min(len(series) + 1, 4))
    caption = ("Share of each class among the training examples and among the examples the "
               "sampler actually drew during training (class_counts.json).")
    return _save(fig, out, "class_counts.png", "Class distribution", caption)


# ---------------------------------------------------------------------------- W montage

def class_templates(W: np.ndarray) -> np.ndarray:
    """Rows of W.T as images, each rescaled to [0, 1] on its own (A1, Figure 'montage').

    Inputs: W (3072, K), rows in CIFAR order (1024 red, 1024 green, 1024 blue; row-major).
    Returns: (K, 32, 32, 3) float images.
    """
    T = W.T.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64)
    lo = T.min(axis=(1, 2, 3), keepdims=True)
    span = T.max(axis=(1, 2, 3), keepdims=True) - lo
    return (T - lo) / np.where(span > 0, span, 1)


def weights_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    found = []
    for run, label in zip(runs, labels, strict=True):
        w = run.linear_weights()
        if w is not None:
            found.append((run, label, class_templates(w[0]), w[1]))
    if not found:
        return None
    names = found[0][0].class_names
    K = found[0][2].shape[0]
    cols = K if len(found) > 1 else math.ceil(K / 2)
    rows = len(found) if len(found) > 1 else math.ceil(K / cols)
    side = 1.6 if len(found) == 1 else 1.2
    fig = Figure(figsize=(side * cols + (1.6 if len(found) > 1 else 0.3),
                          (side + 0.2) * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for r, (_, label, imgs, _) in enumerate(found):
        for k in range(K):
            ax = axes[r, k] if len(found) > 1 else axes.ravel()[k]
            ax.imshow(imgs[k], interpolation="nearest")
            if len(found) == 1 or r == 0:
                ax.set_title(names[k] if k < len(names) else str(k), fontsize=10)
        if len(found) > 1:
            axes[r, 0].set_ylabel(label.replace(", ", "\n"), fontsize=10, rotation=0,
                                  ha="right", va="center")
    source = ", ".join(sorted({f[3] for f in found}))
    fig.suptitle("learnt class templates: each row of Wᵀ as a 32×32 colour image")
    caption = (f"Weights of the linear classifier ({source}): class k's weight vector shown "
               "as an image, each rescaled to [0, 1] on its own.")
    return _save(fig, out, "weights.png", "Class templates (W montage)", caption)


# ---------------------------------------------------------------------------- confidence

LOSS_NAMES = {"softmax_ce": "softmax + cross-entropy loss",
              "bce": "sigmoid + binary cross-entropy (BCE) loss",
              "svm": "multi-class SVM (hinge) loss"}


def loss_name(run: Run) -> str:
    loss = (run.config.get("model") or {}).get("loss")
    kind = loss.get("type") if isinstance(loss, dict) else loss
    return LOSS_NAMES.get(kind, f"{kind} loss" if kind else "loss not recorded")


def confidence_figure(runs: list[Run], labels: list[str], out: Path) -> Plot | None:
    """Histograms of the probability given to the true class, for correctly and wrongly
    classified test examples (the A1 2022 bonus figure comparing softmax with BCE)."""
    found = [(run, lab, got) for run, lab in zip(runs, labels, strict=True)
             if (got := rundir.read_predictions(run.path)) is not None]
    if not found:
        return None
    fig = Figure(figsize=(4.6 * len(found) + 0.6, 4.0), layout="constrained")
    axes = fig.subplots(1, len(found), squeeze=False)[0]
    bins = np.linspace(0, 1, 21)
    for ax, (run, lab, (p, ok)) in zip(axes, found, strict=True):
        ax.hist(p[ok], bins, color=COLORS[2], alpha=0.7, label=f"correct (n = {ok.sum()})")
        ax.hist(p[~ok], bins, color=COLORS[3], alpha=0.7, label=f"wrong (n = {(~ok).sum()})")
        ax.set(xlabel="probability of the true class", ylabel="test examples")
        ax.set_title(loss_name(run) + (f"\n{lab}" if len(found) > 1 else ""), fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("probability of the true class (test set, final parameters)", fontsize=11)
    caption = ("How sure the final model is of the true class on each test example, split "
               "by whether its prediction was right (predictions_test.csv); each panel is "
               "titled with the loss the model was trained with (A1 bonus: BCE against "
               "softmax + cross-entropy).")
    return _save(fig, out, "confidence.png", "Probability of the true class", caption)


# ---------------------------------------------------------------------------- all of them

def draw_all(runs: list[Run], labels: list[str], out: Path) -> tuple[list[Plot], list[str]]:
    """Every figure that the runs have data for, and a note for each one left out."""
    plots = [loss_figure(runs, labels, out), accuracy_figure(runs, labels, out)]
    lr = constant_lr(runs)
    optional = [  # (draw, note when there is nothing to draw; None: nothing worth saying)
        (lambda: lr_figure(runs, labels, out),
         f"the learning rate was constant, η = {lr:.3g}: no learning-rate figure"
         if lr is not None else None),
        (lambda: lr_range_figure(runs, labels, out), None),
        (lambda: uva_figure(runs, labels, out), None),
        (lambda: confusion_figure(runs, labels, "val", out),
         "no confusion_val.csv: validation confusion matrix left out"),
        (lambda: confusion_figure(runs, labels, "test", out), None),
        (lambda: confusion_strip_figure(runs, labels, out),
         "fewer than two kept confusion/val_step*.csv: no confusion strip over training"),
        (lambda: per_class_figure(runs, labels, out),
         "per-class accuracy left out (no confusion matrices, or different classes)"),
        (lambda: class_counts_figure(runs, labels, out),
         "no class_counts.json in the run folder: class distribution figure left out"),
        (lambda: weights_figure(runs, labels, out), None),
        (lambda: confidence_figure(runs, labels, out), None),
    ]
    notes = []
    for draw, note in optional:
        plot = draw()
        if plot is not None:
            plots.append(plot)
        elif note:
            notes.append(note)
    return plots, notes
