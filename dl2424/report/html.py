"""Assemble a report: figures and tables in sections, written as report.md (images beside it)
and as one self-contained index.html (images embedded as base64, inline CSS, no network).
"""

from __future__ import annotations

import base64
import html
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import rundir
from ..atomic import write_text
from ..errors import UserError
from .comparison import draw_comparison
from .figures import Plot, draw_all
from .load import Run, read_run, require_metrics
from .tables import (
    Table,
    config_table,
    gradcheck_table,
    header_text,
    metrics_table,
    per_class_tables,
    run_labels,
    timing_table,
)

REPORTS_DIR = Path("reports")
GENERATOR = '<meta name="generator" content="dl2424 report">'  # marks folders we may tidy


@dataclass
class Preformatted:
    """A block of text shown as it is (a generated passage), with a caption."""

    title: str
    text: str
    caption: str = ""


@dataclass
class Section:
    title: str
    items: list = field(default_factory=list)  # Table | Plot | str (a paragraph)


# ---------------------------------------------------------------------------- content

def run_notes(runs: list[Run], labels: list[str]) -> list[str]:
    """Warnings a reader must see before trusting the numbers."""
    notes = []
    for run, label in zip(runs, labels, strict=True):
        who = label if len(runs) > 1 else "this run"
        if run.status == "running":
            notes.append(f"{who} is still running (or was killed without a chance to say "
                         f"so): the report shows its first {len(run.rows)} evaluations.")
        elif run.status == "failed" and run.file("lr_range.json").is_file():
            notes.append(f"the LR range test of {who} stopped when the loss diverged, as it "
                         f"may near the top of the sweep ({run.summary.get('error')})")
        elif run.status in ("failed", "interrupted"):
            notes.append(f"{who} {run.status}: {run.summary.get('error') or 'no reason given'}")
        if run.truncated:
            notes.append(f"{run.id}/metrics.csv ends in an incomplete line; it was left out.")
    return notes


def build_sections(runs: list[Run], labels: list[str], plots: list[Plot],
                   figure_notes: list[str]) -> list[Section]:
    by_file = {p.file: p for p in plots}

    def figs(*files):
        return [by_file[f] for f in files if f in by_file]

    results = Section("Results", [metrics_table(runs, labels), timing_table(runs, labels)])
    curves = Section("Training curves", figs("loss.png", "accuracy.png", "lr.png",
                                             "lr_range.png", "uva_curves.png"))
    curves.items += [n for n in figure_notes if "learning-rate figure" in n]
    figure_notes = [n for n in figure_notes if "learning-rate figure" not in n]
    classes = Section("Classes", figs("confusion_val.png", "confusion_test.png",
                                      "confusion_strip.png", "per_class.png"))
    classes.items += per_class_tables(runs, labels)
    classes.items += figs("class_counts.png", "confidence.png") + figure_notes
    sections = [results, curves, classes]
    if compared := figs("bars.png", "loss_panels.png", "true_class.png"):
        sections.insert(1, Section("Runs compared", compared))
    if "weights.png" in by_file:
        sections.append(Section("Weights", figs("weights.png")))
    checks = [t for run, label in zip(runs, labels, strict=True)
              if (t := gradcheck_table(run, label if len(runs) > 1 else ""))]
    if checks:
        sections.append(Section("Gradient check", checks))
    params = Section("Hyper-parameters", config_table(runs, labels))
    overrides = [f"{label}: --set {' --set '.join(o)}" if len(runs) > 1 else
                 f"--set {' --set '.join(o)}"
                 for run, label in zip(runs, labels, strict=True) if (o := _overrides(run))]
    if overrides:
        params.items.append("Command-line overrides: " + "; ".join(overrides))
    sections.append(params)
    return sections


def _overrides(run: Run) -> list[str]:
    f = run.file(rundir.OVERRIDES)
    try:
        items = yaml.safe_load(f.read_text(encoding="utf-8")) if f.is_file() else None
    except yaml.YAMLError:
        return []
    return [str(o) for o in items] if isinstance(items, list) else []


def _shown(path: Path) -> str:
    """A path relative to the working folder when it is inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def header_lines(runs: list[Run], out: Path) -> list[str]:
    first = runs[0]
    folders = ", ".join(_shown(r.path) for r in runs)
    return [f"dataset {first.dataset} · model {', '.join(dict.fromkeys(r.model for r in runs))}"
            f" · {len(runs)} run{'s' if len(runs) > 1 else ''}",
            f"run folder{'s' if len(runs) > 1 else ''}: {folders}",
            f"report written {time.strftime('%Y-%m-%d %H:%M')}"]


# ---------------------------------------------------------------------------- Markdown

def to_markdown(title: str, header: list[str], notes: list[str],
                sections: list[Section]) -> str:
    out = [f"# {title}", "", *(f"{h}  " for h in header), ""]
    out += [f"> **note:** {n}" for n in notes] + ([""] if notes else [])
    for s in sections:
        out += [f"## {s.title}", ""]
        for item in s.items:
            if isinstance(item, Table):
                out.append(item.to_markdown())
            elif isinstance(item, Plot):
                out += [f"![{item.title}]({item.file})", "", f"*{item.caption}*", ""]
            elif isinstance(item, Preformatted):
                out += [f"### {item.title}", "", "```text", item.text, "```", "",
                        f"*{item.caption}*", ""]
            else:
                out += [item, ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- HTML

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d2330; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { margin: 0 0 6px; font-size: 26px; }
h2 { margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 2px solid #d6dae1; font-size: 20px; }
h3 { margin: 20px 0 6px; font-size: 15px; color: #3b4456; }
.meta { color: #5b6475; font-size: 13px; margin: 2px 0; }
nav { margin: 14px 0 0; font-size: 13px; }
nav a { margin-right: 14px; color: #2559a8; text-decoration: none; }
.note { background: #fff6dd; border-left: 4px solid #e0a800; padding: 8px 12px;
        margin: 8px 0; font-size: 14px; }
.tablewrap { overflow-x: auto; margin: 4px 0 4px; }
table { border-collapse: collapse; background: white; font-size: 13px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { padding: 5px 10px; border-bottom: 1px solid #e6e8ec; white-space: nowrap; }
th { background: #eef0f4; text-align: left; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
p.tnote { font-size: 12px; color: #5b6475; margin: 4px 0 12px; }
figure { background: white; margin: 16px 0; padding: 12px;
         box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { font-size: 13px; color: #3b4456; margin-top: 8px; }
figcaption b { color: #1d2330; }
.status { display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: 12px;
          color: white; background: #6c757d; }
.status.completed { background: #2f8f4e; } .status.failed { background: #c0392b; }
.status.running { background: #d68910; } .status.interrupted { background: #8e44ad; }
"""


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def table_html(t: Table) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(header_text(c))}</th>" for c in t.columns)
    body = []
    for raw, text in zip(t.rows, t.text_rows(), strict=True):
        cells = []
        for c, v, s in zip(t.columns, raw, text, strict=True):
            if c == "status":
                cells.append(f'<td><span class="status {esc(s)}">{esc(s)}</span></td>')
            else:
                num = isinstance(v, int | float) and not isinstance(v, bool)
                cells.append(f'<td class="num">{esc(s)}</td>' if num else f"<td>{esc(s)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="tnote">{esc(t.note)}</p>' if t.note else ""
    return (f"<h3>{esc(t.title)}</h3>\n<div class=\"tablewrap\"><table><thead><tr>{head}</tr>"
            f"</thead>\n<tbody>\n" + "\n".join(body) + f"\n</tbody></table></div>\n{note}")


def figure_html(p: Plot, out: Path) -> str:
    data = base64.b64encode((out / p.file).read_bytes()).decode("ascii")
    esc = html.escape
    return (f'<figure id="{_anchor(p.file)}"><img src="data:image/png;base64,{data}" '
            f'alt="{esc(p.title)}" data-file="{esc(p.file)}">\n'
            f"<figcaption><b>{esc(p.title)}.</b> {esc(p.caption)} "
            f'<a href="{esc(p.file)}">{esc(p.file)}</a></figcaption></figure>')


def to_html(title: str, header: list[str], notes: list[str], sections: list[Section],
            out: Path) -> str:
    esc = html.escape
    parts = [f"<h1>{esc(title)}</h1>", *(f'<p class="meta">{esc(h)}</p>' for h in header)]
    parts.append("<nav>" + "".join(f'<a href="#{_anchor(s.title)}">{esc(s.title)}</a>'
                                   for s in sections) + "</nav>")
    parts += [f'<div class="note"><b>note:</b> {esc(n)}</div>' for n in notes]
    for s in sections:
        parts.append(f'<h2 id="{_anchor(s.title)}">{esc(s.title)}</h2>')
        for item in s.items:
            if isinstance(item, Table):
                parts.append(table_html(item))
            elif isinstance(item, Plot):
                parts.append(figure_html(item, out))
            elif isinstance(item, Preformatted):
                parts.append(f"<h3>{esc(item.title)}</h3><pre>{esc(item.text)}</pre>"
                             f'<p class="tnote">{esc(item.caption)}</p>')
            else:
                parts.append(f'<p class="tnote">{esc(item)}</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"{GENERATOR}\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style></head>\n<body><main>\n"
            + "\n".join(parts) + "\n</main></body></html>\n")


# ---------------------------------------------------------------------------- entry points

def write_report(runs: list[Run], out: Path, title: str) -> Path:
    """Draw every figure into `out`, then write report.md and index.html there."""
    out.mkdir(parents=True, exist_ok=True)
    ours = (out / "index.html").is_file() and GENERATOR in (out / "index.html").read_text(
        encoding="utf-8", errors="replace")
    labels = run_labels(runs) if len(runs) > 1 else [runs[0].name]
    plots, figure_notes = draw_all(runs, labels, out)
    plots += draw_comparison(runs, out)
    if ours:  # an earlier report here: drop its figures that this one no longer draws
        for stale in set(out.glob("*.png")) - {out / p.file for p in plots}:
            stale.unlink()
    sections = build_sections(runs, labels, plots, figure_notes)
    header, notes = header_lines(runs, out), run_notes(runs, labels)
    write_text(out / "report.md", to_markdown(title, header, notes, sections))
    write_text(out / "index.html", to_html(title, header, notes, sections, out))
    return out / "index.html"


def default_name(runs: list[Run]) -> str:
    joined = "-vs-".join(dict.fromkeys(r.name for r in runs))
    if len(runs) <= 3 and len(joined) <= 80 and len(set(r.name for r in runs)) == len(runs):
        return joined
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{len(runs)}-runs"


def make_report(paths: list[Path], name: str | None = None, out: Path | None = None,
                reports_dir: Path = REPORTS_DIR) -> Path:
    """One run: RUN/report/. Several: reports/<name>/ (or `out`). Returns index.html."""
    if not paths:
        raise UserError("give at least one run folder, e.g. dl2424 report runs/<id>")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UserError(f"--name {name!r}: use letters, digits, '-', '_' and '.' only "
                        "(it becomes a folder name)")
    unique = list(dict.fromkeys(Path(p).resolve() for p in paths))
    runs = [require_metrics(read_run(p)) for p in unique]
    datasets = {r.dataset for r in runs}
    if len(datasets) > 1:
        listing = "\n".join(f"  {r.path}: {r.dataset}" for r in runs)
        raise UserError("these runs use different datasets, so their curves and classes "
                        f"cannot share one report:\n{listing}\nreport each dataset's runs "
                        "separately")
    if out is None:
        out = runs[0].path / "report" if len(runs) == 1 else reports_dir / (
            name or default_name(runs))
    title = name or (runs[0].name if len(runs) == 1 else
                     " vs ".join(dict.fromkeys(r.name for r in runs)))
    if runs[0].info.get("meta", {}).get("task") == "lm":  # character language models
        from .textreport import write_text_report
        return write_text_report(runs, Path(out), title)
    return write_report(runs, Path(out), title)
