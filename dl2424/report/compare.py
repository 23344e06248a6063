"""`compare` and `runs`: one row per run, the config keys that differ, best or final metrics.

Runs that failed, were interrupted or are still running are listed with their status; a
run without any evaluation yet shows empty metrics instead of disappearing.
"""

from __future__ import annotations

import glob
import math
from pathlib import Path

from ..atomic import write_text
from ..errors import UserError
from .load import Run, is_run, read_run
from .tables import Table, differing_keys, flatten, leaf_text, metric_columns, test_metrics

ASCENDING = ("loss", "cost", "wall_time_s")  # smaller is better; everything else: larger
TERMINAL_KEYS = 6  # differing config keys shown in the terminal; files get all of them


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def select(patterns: list[str]) -> list[Path]:
    """Run folders named by each pattern: a glob ('runs/*names*'), a run folder, or a folder
    holding run folders (e.g. runs). A glob that matches no run folder is an error."""
    if not patterns:
        raise UserError("give run folders or a quoted glob, e.g. 'runs/*cifar*'")
    found = []
    for pattern in patterns:
        if _has_magic(pattern):
            matches = sorted(Path(m) for m in glob.glob(pattern))
            runs = [m for m in matches if is_run(m)]
            if not runs:
                what = f"{len(matches)} paths, none of them a run folder" if matches else \
                    "nothing"
                raise UserError(f"{pattern!r} matches {what}; list the runs with `dl2424 runs`")
            found += runs
            continue
        path = Path(pattern)
        children = sorted(c for c in path.iterdir() if is_run(c)) \
            if path.is_dir() and not is_run(path) else []
        if children:
            found += children
        else:
            read_run(path)  # a non-run folder or a missing path: raises the clear message
            found.append(path)
    return list(dict.fromkeys(found))


def _at_row(run: Run, at: str) -> dict:
    return (run.best if at == "best" else run.final) or {}


def compare_table(runs: list[Run], at: str = "best", sort: str | None = None) -> Table:
    """One row per run: status, the differing config keys, metrics of the best (highest
    validation accuracy) or final evaluation, test metrics, wall time."""
    if at not in ("best", "final"):
        raise UserError(f"{at!r}: choose best or final")
    keys = differing_keys([r.config for r in runs])
    metrics = [m for m in metric_columns(runs)
               if not m.endswith("cost") or _cost_differs(runs)]
    test = any("test" in r.summary for r in runs)
    flat = [flatten(r.config) for r in runs]
    # the terminal has room for a few keys: those with the most distinct values
    spread = {k: len({repr(f.get(k)) for f in flat}) for k in keys}
    hidden = sorted(keys, key=lambda k: -spread[k])[TERMINAL_KEYS:]
    columns = ["run", "status", *keys, "step", "epoch", *metrics,
               *(["test_loss", "test_acc"] if test else []), "wall_time_s", "folder"]
    t = Table(f"{len(runs)} run{'s' if len(runs) != 1 else ''}: "
              + ("at the best validation accuracy" if at == "best" else "at the last evaluation"),
              columns, wide=("epoch", "train_cost", "val_cost", "test_loss", "folder",
                             *hidden))
    names = [r.name for r in runs]
    unique = len(set(names)) == len(names)
    for run, f in zip(runs, flat, strict=True):
        row = _at_row(run, at)
        t.rows.append([run.name if unique else run.id, run.status,
                       *(_config_cell(f.get(k)) for k in keys),
                       row.get("step"), row.get("epoch"), *(row.get(m) for m in metrics),
                       *(test_metrics(run, at) if test else ()),
                       run.summary.get("wall_time_s"), str(run.path)])
    t.note = (f"config keys shown: those that differ ({len(keys)})" if keys else
              "the runs' configs are identical apart from their names")
    if len(keys) > TERMINAL_KEYS:
        t.note += (f"; the terminal shows the {TERMINAL_KEYS} with the most distinct values, "
                   "--csv/--markdown write all")
    return sort_table(t, sort) if sort else t


def _config_cell(v) -> str | None:
    """A config value as text; None (shown as the one missing mark, empty in CSV) when the
    run's config lacks the key or sets it to null."""
    return None if v is None else leaf_text(v)


def _cost_differs(runs: list[Run]) -> bool:
    return any(r.get("train_cost") != r.get("train_loss") for run in runs for r in run.rows)


def sort_table(t: Table, column: str) -> Table:
    """Best first: ascending for losses, costs and times, descending otherwise; blanks last."""
    if column not in t.columns:
        valid = ", ".join(c for c in t.columns if c not in ("run", "status"))
        raise UserError(f"--sort {column!r}: not a column of this table; choose one of: {valid}")
    i = t.columns.index(column)
    ascending = column.endswith(ASCENDING)

    def key(row):
        v = row[i]
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return (2, 0.0, "")
        if isinstance(v, int | float):
            return (0, v if ascending else -v, "")
        return (1, 0.0, str(v))

    t.rows.sort(key=key)
    t.title += f", sorted by {column}"
    return t


def compare(patterns: list[str], at: str = "best", sort: str | None = None,
            csv_file: Path | None = None, markdown_file: Path | None = None) -> Table:
    """The `compare` command: select, read, tabulate, export."""
    table = compare_table([read_run(p) for p in select(patterns)], at, sort)
    if csv_file:
        write_text(Path(csv_file), table.to_csv())
    if markdown_file:
        write_text(Path(markdown_file), table.to_markdown())
    return table


def runs_table(runs_dir: Path) -> Table:
    """The `runs` command: every run folder under runs_dir, oldest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir}: no such folder; train a model first, or point "
                        "--runs-dir at the folder that holds the run folders")
    t = Table(f"runs in {runs_dir}", ["run", "started", "status", "dataset", "model",
                                      "steps", "best val_acc", "test_acc", "wall_time_s"],
              wide=("started",))  # the run folder's name starts with its start time
    broken = []
    for path in sorted(p for p in runs_dir.iterdir() if is_run(p)):
        try:
            run = read_run(path)
        except UserError as e:
            broken.append(str(e).splitlines()[0])
            t.rows.append([path.name, None, "unreadable", None, None, None, None, None, None])
            continue
        s = run.summary
        steps = f"{s.get('steps', '?')}/{s.get('total_steps', '?')}" if s else None
        t.rows.append([run.id, s.get("started"), run.status, run.dataset, run.model, steps,
                       run.best["val_acc"] if run.best else None,
                       (s.get("test") or {}).get("acc"), s.get("wall_time_s")])
    if not t.rows:
        t.note = f"no run folders in {runs_dir} yet; `dl2424 train CONFIG` makes one"
    elif broken:
        t.note = "unreadable: " + "; ".join(broken)
    return t
