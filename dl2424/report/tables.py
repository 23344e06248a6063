"""The tables of a report: metrics at the end and at the best evaluation, per-class accuracy,
hyper-parameters (all of them, or only those that differ between runs), timing.

A `Table` holds raw values; each output (Markdown, HTML, CSV, rich) formats them through
`fmt`, which picks the format from the column name (…acc → percent, …loss → 4 decimals).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rich.markup import escape
from rich.table import Table as RichTable

from ..config import NO_DEFAULT, key_default
from ..errors import UserError
from .load import Run

SPLIT_METRICS = ("loss", "cost", "acc")
CELL_WIDTH = 24  # a longer value folds onto a second line in the terminal
MISSING = "–"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    note: str = ""
    wide: tuple[str, ...] = ()  # columns left out of the terminal table (kept in files)
    priority: tuple[str, ...] = ()  # the columns a narrow terminal keeps first, in order
    kinds: dict[str, str] = field(default_factory=dict)  # column -> name `fmt` goes by

    def text_rows(self) -> list[list[str]]:
        return [[fmt(self.kinds.get(c, c), v) for c, v in zip(self.columns, r, strict=True)]
                for r in self.rows]

    def to_markdown(self) -> str:
        def esc(s):
            return str(s).replace("|", "\\|")

        out = [f"### {self.title}", ""] if self.title else []
        out.append("| " + " | ".join(esc(header_text(c)) for c in self.columns) + " |")
        out.append("|" + "|".join("--:" if i and self._numeric(i) else ":--"
                                  for i in range(len(self.columns))) + "|")
        out += ["| " + " | ".join(esc(v) for v in r) + " |" for r in self.text_rows()]
        if self.note:
            out += ["", f"*{self.note}*"]
        return "\n".join(out) + "\n"

    def frame(self) -> pd.DataFrame:
        """The raw values as a DataFrame (a missing value is None/NaN)."""
        return pd.DataFrame(self.rows, columns=self.columns, dtype=object)

    def to_csv(self) -> str:
        """Raw values (fractions, not percent), so that the file can be analysed further;
        a missing value is an empty field."""
        return self.frame().to_csv(index=False, lineterminator="\n", na_rep="")

    def shown(self, width: int | None = None, wide: bool = False,
              columns: list[str] | None = None) -> list[int]:
        """The columns for a terminal `width`: the first (the run) always, then the others by
        priority while they fit; `wide` shows every column, `columns` exactly those named."""
        if columns:
            unknown = [c for c in columns if c not in self.columns]
            if unknown:
                raise UserError(f"--columns: {', '.join(unknown)}: not a column of this "
                                f"table; choose from: {', '.join(self.columns)}")
            return sorted({0, *(self.columns.index(c) for c in columns)})
        if wide:
            return list(range(len(self.columns)))
        rank = {c: i for i, c in enumerate(self.priority)}
        order = sorted((i for i, c in enumerate(self.columns) if c not in self.wide),
                       key=lambda i: (i != 0, rank.get(self.columns[i], len(rank)), i))
        if width is None:
            return sorted(order)
        text = self.text_rows()
        room, keep = width - 1, []  # rich: one border character per column plus one
        for i in order:
            need = self._width(i, text) + 3  # padding both sides and a border
            if i == 0 or need <= room:
                keep.append(i)
                room -= need
        return sorted(keep)

    def _width(self, i: int, text: list[list[str]], cap: int | None = CELL_WIDTH) -> int:
        cells = max((len(r[i]) for r in text), default=0)
        header = len(self.columns[i])
        return max(header, cells if i == 0 or cap is None else min(cells, cap))

    def needed_width(self, wide: bool = False, columns: list[str] | None = None) -> int:
        """Terminal columns the table takes with these columns, values unfolded."""
        text = self.text_rows()
        return 1 + sum(self._width(i, text, None) + 3 for i in self.shown(None, wide, columns))

    def to_rich(self, width: int | None = None, wide: bool = False,
                columns: list[str] | None = None) -> RichTable:
        keep = self.shown(width, wide, columns)
        text = self.text_rows()
        left_out = [self.columns[i] for i in range(len(self.columns)) if i not in keep]
        note = self.note + ("; " if self.note and left_out else "") + (
            f"not shown: {', '.join(left_out)} (--wide, or --columns to choose)"
            if left_out else "")
        t = RichTable(title=escape(self.title), caption=escape(note) or None)
        for i in keep:
            t.add_column(escape(self.columns[i]), no_wrap=i == 0, overflow="fold",
                         min_width=self._width(i, text, None if wide else CELL_WIDTH),
                         justify="left" if i == 0 or not self._numeric(i) else "right")
        for r, raw in zip(text, self.rows, strict=True):
            status = next((v for c, v in zip(self.columns, raw, strict=True) if c == "status"),
                          None)
            t.add_row(*(escape(r[i]) for i in keep), style=STATUS_STYLE.get(status))
        return t

    def _numeric(self, i: int) -> bool:
        return all(isinstance(r[i], int | float) or r[i] is None for r in self.rows)


HEADERS = {"wall_time_s": "wall time (s)", "steps_per_sec": "updates/s",
           "n_params": "parameters", "max_abs": "max |a − n|", "max_rel": "max relative error",
           "n_val": "validation examples", "at": "at"}
HEADER_WORDS = {"acc": "accuracy"}


def header_text(column: str) -> str:
    """A column name as a table header for people (Markdown, HTML): 'val_acc' -> 'val
    accuracy', 'best val_acc' -> 'best val accuracy'. Labels such as 'l2=0.1' and dotted
    config keys stay as they are; the terminal and CSV keep the names --sort takes."""
    if column in HEADERS:
        return HEADERS[column]
    return " ".join(" ".join(HEADER_WORDS.get(p, p) for p in w.split("_"))
                    if re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", w) else w
                    for w in column.split(" "))


STATUS_STYLE = {"failed": "red", "running": "yellow", "interrupted": "magenta",
                "stale": "magenta", "unknown": "dim"}


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(column: str, v) -> str:
    """One cell as text; the column name says what kind of number it holds."""
    if _missing(v):
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(v)
    if not isinstance(v, float | np.floating):
        return str(v)
    name = column.split()[-1]
    if name.endswith("acc"):
        return f"{100 * v:.2f}%"
    if name.endswith(("loss", "cost")):
        return f"{v:.4f}" if abs(v) < 1e5 else f"{v:.3e}"
    if name.endswith(("_abs", "_rel")):
        return f"{v:.2e}"
    if name in ("lr", "eta_min", "eta_max"):
        return f"{v:.3g}"
    if name == "epoch":
        return f"{v:.2f}"
    return f"{v:.4g}"


# ---------------------------------------------------------------------------- configs

def flatten(d: dict, prefix: str = "") -> dict:
    """{'model': {'l2': 0.1, 'layers': [{'width': 5}]}} ->
    {'model.l2': 0.1, 'model.layers[0].width': 5}; lists of scalars are leaves."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= flatten(v, key + ".")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                out |= flatten(x, f"{key}[{i}].")
        else:
            out[key] = v
    return out


def config_cell(flat: dict, key: str) -> str | None:
    """A config value as text; None (shown as the one missing mark, empty in CSV) when the
    run's config lacks the key or sets it to null."""
    v = flat.get(key)
    return None if v is None else leaf_text(v)


def leaf_text(v) -> str:
    """A config value as YAML would print it: null, true, [50, 50]."""
    if isinstance(v, list):
        return "[" + ", ".join(leaf_text(x) for x in v) + "]"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def flatten_all(configs: list[dict]) -> list[dict]:
    """Each config flattened; a key another run has and this one lacks gets its registry
    default (the run was made before the key existed and ran as that default); a key
    without a default stays absent."""
    flat = [flatten(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    for config, f in zip(configs, flat, strict=True):
        for k in keys:
            if k not in f and (value := key_default(config, k)) is not NO_DEFAULT:
                f[k] = value
    return flat


def differing_keys(configs: list[dict], ignored: tuple[str, ...] = ("name",)) -> list[str]:
    """Dotted config keys whose value is not the same in every run: a key a run lacks counts
    as its registry default (null when it has none). `name` is left out: it labels a run,
    it does not change what it does."""
    flat = flatten_all(configs)
    keys = list(dict.fromkeys(k for f in flat for k in f))
    return [k for k in keys if k not in ignored and len({repr(f.get(k)) for f in flat}) > 1]


def short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's last part ('model.l2' -> 'l2'), unless two keys would share one."""
    short = {k: k.rsplit(".", 1)[-1] for k in keys}
    return short if len(set(short.values())) == len(keys) else {k: k for k in keys}


def run_labels(runs: list[Run]) -> list[str]:
    """A short label per run from the config keys that differ: 'l2=0.1, lr=0.001'. A key's
    last part is used alone when that is unambiguous among the differing keys."""
    keys = differing_keys([r.config for r in runs])
    if not keys:
        return [r.id for r in runs]
    short = short_names(keys)
    flat = flatten_all([r.config for r in runs])
    labels = [", ".join(f"{short[k]}={config_cell(f, k) or MISSING}" for k in keys)
              for f in flat]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} ({r.id})" for lab, r in zip(labels, runs, strict=True)]
    return labels


def config_table(runs: list[Run], labels: list[str]) -> list[Table]:
    """One run: every key. Several: the differing keys side by side, then the shared ones."""
    flat = flatten_all([r.config for r in runs])
    if len(runs) == 1:
        return [Table("resolved config (config.yaml)", ["key", "value"],
                      [[k, leaf_text(v)] for k, v in flat[0].items()])]
    diff = differing_keys([r.config for r in runs])
    same = [k for k in flat[0] if k not in diff and k != "name"]
    return [
        Table("hyper-parameters that differ", ["key", *labels],
              [[k, *(config_cell(f, k) for f in flat)] for k in diff],
              note="" if diff else "the runs have identical configs"),
        Table("hyper-parameters shared by all runs", ["key", "value"],
              [[k, leaf_text(flat[0][k])] for k in same]),
    ]


# ---------------------------------------------------------------------------- metrics

def metric_columns(runs: list[Run]) -> list[str]:
    """train/val loss, cost, acc, then any extra val_* columns (e.g. val_unseen_acc)."""
    cols = [f"{s}_{m}" for s in ("train", "val") for m in SPLIT_METRICS]
    extra = dict.fromkeys(k for r in runs for row in r.rows[:1] for k in row
                          if k.startswith("val_") and k not in cols)
    return cols + list(extra)


def test_metrics(run: Run, at: str) -> tuple:
    """(test_loss, test_acc) of the final ('final') or best-by-validation ('best') params."""
    t = run.summary.get("test" if at == "final" else "test_at_best") or {}
    return t.get("loss"), t.get("acc")


def has_test(runs: list[Run]) -> bool:
    return any("test" in r.summary for r in runs)


def metrics_table(runs: list[Run], labels: list[str]) -> Table:
    """Final and best-validation rows of every run: step, epoch, every metric, test."""
    cols = metric_columns(runs)
    test = has_test(runs)
    head = ["run", "at"] if len(runs) > 1 else ["at"]
    t = Table("loss, cost and accuracy at the end and at the best validation accuracy",
              [*head, "step", "epoch", *cols, *(["test_loss", "test_acc"] if test else [])])
    for run, label in zip(runs, labels, strict=True):
        for at, row in (("final", run.final), ("best", run.best)):
            cells = [label, at] if len(runs) > 1 else [at]
            cells += [row["step"], row["epoch"], *(row.get(c) for c in cols)]
            t.rows.append(cells + (list(test_metrics(run, at)) if test else []))
    t.note = ("best = the evaluation with the highest validation accuracy (best.npz); "
              "test metrics are measured once, at the end of the run" if test else
              "best = the evaluation with the highest validation accuracy (best.npz)")
    return t


def timing_table(runs: list[Run], labels: list[str]) -> Table:
    t = Table("status and speed", ["run", "status", "steps", "total_steps", "wall_time_s",
                                   "steps_per_sec", "n_params", "started", "finished"])
    for run, label in zip(runs, labels, strict=True):
        s = run.summary
        t.rows.append([label, run.status, s.get("steps"), s.get("total_steps"),
                       s.get("wall_time_s"), s.get("steps_per_sec"), s.get("n_params"),
                       s.get("started"), s.get("finished")])
    return t


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Inputs: matrix (K, K) counts, rows = true class. Returns: (K,) recall per class."""
    n = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.diag(matrix) / n, np.nan)


def best_confusion(run: Run) -> np.ndarray | None:
    """The validation confusion at the best step, when the run kept it."""
    best = run.best
    if best is None or best["step"] == run.final["step"]:
        return None
    return run.confusion_at(best["step"])


def per_class_series(run: Run) -> dict[str, np.ndarray]:
    """{'val_acc': (K,), 'best val_acc': (K,), 'test_acc': (K,)} for what the run has."""
    out = {}
    val = run.confusion("val")
    if val:
        out["val_acc"] = per_class_accuracy(val[1])
    best = best_confusion(run)
    if best is not None:
        out["best val_acc"] = per_class_accuracy(best)
    test = run.confusion("test")
    if test:
        out["test_acc"] = per_class_accuracy(test[1])
    return out


PER_CLASS_TITLE = {"val_acc": "validation set, last evaluation",
                   "best val_acc": "validation set, evaluation with the best accuracy",
                   "test_acc": "test set, final parameters"}


def per_class_tables(runs: list[Run], labels: list[str]) -> list[Table]:
    """One run: a column per split. Several: a table per split, a column per run."""
    names = runs[0].class_names
    if not names or any(r.class_names != names for r in runs):
        return []
    series = [per_class_series(run) for run in runs]
    val = runs[0].confusion("val")
    n_val = [int(n) for n in val[1].sum(axis=1)] if val else [None] * len(names)
    title = "per-class accuracy (recall: correct / examples of the class)"
    if len(runs) == 1:
        cols = list(series[0])
        if not cols:
            return []
        rows = [[name, n, *(float(series[0][c][i]) for c in cols)]
                for i, (name, n) in enumerate(zip(names, n_val, strict=True))]
        note = "; ".join(f"{c}: {PER_CLASS_TITLE[c]}" for c in cols)
        return [Table(title, ["class", "n_val", *cols], rows, note)]
    tables = []
    for key in ("val_acc", "test_acc"):
        have = [(label, s[key]) for label, s in zip(labels, series, strict=True) if key in s]
        if not have:
            continue
        rows = [[name, *(float(acc[i]) for _, acc in have)] for i, name in enumerate(names)]
        tables.append(Table(f"{title} — {PER_CLASS_TITLE[key]}",
                            ["class", *(label for label, _ in have)], rows,
                            kinds={label: "acc" for label, _ in have}))
    return tables


def gradcheck_table(run: Run, label: str = "") -> Table | None:
    checks = run.extra("gradcheck.json")
    if not checks:
        return None
    # `gradcheck --save` writes a list of reports, each with rows; older files, the rows.
    reports = checks if isinstance(checks[0], dict) and "rows" in checks[0] else [{"rows": checks}]
    t = Table("analytic against numerical gradients, per parameter"
              + (f" — {label}" if label else ""),
              ["param", "shape", "checked", "over", "max_abs", "mean_abs", "max_rel", "passed"])
    for rep in reports:
        for c in rep.get("rows", []):
            t.rows.append([c.get("param"), "×".join(map(str, c.get("shape", []))),
                           c.get("checked"), c.get("over"), c.get("max_abs"),
                           c.get("mean_abs"), c.get("max_rel"), c.get("passed")])
    return t
