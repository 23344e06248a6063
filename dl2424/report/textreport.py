"""Reports of character language models (A4): the smooth-loss curve with an epoch axis, the
samples written over training (before the first update and every 10,000 updates, as the
hand-out's report asks), and a 1,000-character passage from the best parameters.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from .. import rundir
from ..atomic import write_text
from ..generate import Settings, generate
from .figures import CURVE_SIZE, Plot, _color, _epoch_axis, _save
from .html import Preformatted, Section, header_lines, run_notes, to_html, to_markdown
from .load import Run
from .tables import Table, config_table, gradcheck_table, run_labels

SAMPLE_EVERY = 10_000  # the hand-out's report: samples every 10,000 updates
PASSAGE = 1000
LINES = 20  # a model of lines shows this many instead


def smooth_loss_figure(runs: list[Run], labels: list[str], out: Path) -> Plot:
    """Smooth loss (and the validation loss, when held out) against the update step."""
    fig = Figure(figsize=CURVE_SIZE, layout="constrained")
    ax = fig.subplots()
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        steps = [r["step"] for r in run.rows]
        ax.plot(steps, [r["smooth_loss"] for r in run.rows], color=_color(i),
                label=f"{label}: smooth loss" if len(runs) > 1 else "smooth loss")
        val = [(r["step"], r["val_loss"]) for r in run.rows
               if math.isfinite(r.get("val_loss", math.nan))]
        if val:
            ax.plot(*zip(*val, strict=True), color=_color(i), ls="--", marker="o", markersize=3,
                    label=f"{label}: validation loss" if len(runs) > 1 else "validation loss")
    ax.set(xlabel="update step", ylabel="loss", title="smooth loss over training")
    ax.grid(alpha=0.3)
    _epoch_axis(ax, runs)
    ax.legend(loc="best", fontsize=9)
    caption = ("Smooth loss = .999 smooth + .001 loss of each update (the hand-out's), logged "
               "every few updates; the top axis counts epochs. Dashed: loss on the held-out "
               "text, when the run has one.")
    return _save(fig, out, "smooth_loss.png", "Smooth loss", caption)


def read_samples(run: Run) -> list[dict]:
    try:
        return rundir.read_samples(run.path)
    except FileNotFoundError:
        return []


def samples_table(run: Run, label: str = "") -> Table | None:
    """The samples before the first update and every 10,000 updates (every sample the run
    wrote, when it is shorter than that)."""
    samples = read_samples(run)
    if not samples:
        return None
    picked = [s for s in samples if s["step"] % SAMPLE_EVERY == 0]
    if len(picked) < 2:
        picked = samples
    t = Table("samples over training" + (f" — {label}" if label else ""),
              ["update", "epoch", "smooth_loss", "text"],
              note="↵ marks a newline in the sampled text.")
    for s in picked:
        loss = s.get("smooth_loss")
        t.rows.append([s["step"], s.get("epoch", 0.0),
                       loss if loss is not None else math.nan,
                       (f"[{s['class']}] " if s.get("class") else "")
                       + s["text"].replace("\n", "↵ ")])
    return t


def passage(run: Run) -> Preformatted:
    """PASSAGE characters from the run's best (lowest smooth loss) parameters, seed 0; for a
    model of lines (surnames), LINES lines."""
    how = ("Sampled one character at a time from softmax(o), temperature 1, by the inverse "
           "CDF; seed 0")
    if run.info.get("meta", {}).get("mode") == "lines":
        lines = generate(run.path, Settings(length=PASSAGE // LINES, seed=0, count=LINES))
        return Preformatted(f"{LINES} lines from the best model — {run.name}", "\n".join(lines),
                            f"{how}, each line from its start token (a random class when the "
                            f"model has classes) to the end of line (dl2424 generate --run RUN "
                            f"--count {LINES}).")
    text = generate(run.path, Settings(length=PASSAGE, seed=0, count=1))[0]
    return Preformatted(f"{PASSAGE:,} characters from the best model — {run.name}", text,
                        f"{how} (dl2424 generate --run RUN --length 1000).")


def results_table(runs: list[Run], labels: list[str]) -> Table:
    t = Table("smooth loss", ["run", "updates", "epochs", "first", "final", "lowest",
                              "at update", "val_loss", "wall_s"])
    for run, label in zip(runs, labels, strict=True):
        best = min(run.rows, key=lambda r: r["smooth_loss"])
        val = [r["val_loss"] for r in run.rows if math.isfinite(r.get("val_loss", math.nan))]
        t.rows.append([label, run.rows[-1]["step"], run.rows[-1]["epoch"],
                       run.rows[0]["smooth_loss"], run.rows[-1]["smooth_loss"],
                       best["smooth_loss"], best["step"], val[-1] if val else math.nan,
                       run.summary.get("wall_time_s", math.nan)])
    return t


def write_text_report(runs: list[Run], out: Path, title: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    labels = run_labels(runs) if len(runs) > 1 else [runs[0].name]
    plot = smooth_loss_figure(runs, labels, out)
    results = Section("Results", [results_table(runs, labels), plot])
    samples = Section("Samples", [t for run, label in zip(runs, labels, strict=True)
                                  if (t := samples_table(run, label if len(runs) > 1 else ""))])
    samples.items += [passage(run) for run in runs]
    sections = [results, samples]
    checks = [t for run, label in zip(runs, labels, strict=True)
              if (t := gradcheck_table(run, label if len(runs) > 1 else ""))]
    if checks:
        sections.append(Section("Gradient check", checks))
    sections.append(Section("Hyper-parameters", config_table(runs, labels)))
    header, notes = header_lines(runs, out), run_notes(runs, labels)
    write_text(out / "report.md", to_markdown(title, header, notes, sections))
    write_text(out / "index.html", to_html(title, header, notes, sections, out))
    return out / "index.html"
