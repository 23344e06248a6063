"""`compare` and `runs`: one row per run, the config keys that differ, best or final metrics.

Runs that failed, were interrupted or are still running are listed with their status; a
run without any evaluation yet shows empty metrics instead of disappearing.
"""

from __future__ import annotations

import fnmatch
import glob
import math
from pathlib import Path

from ..atomic import write_text
from ..errors import UserError
from .load import Run, is_run, read_run
from .tables import (
    Table,
    config_cell,
    differing_keys,
    flatten_all,
    metric_columns,
    test_metrics,
)

ASCENDING = ("loss", "cost", "wall_time_s")  # smaller is better; everything else: larger
TERMINAL_KEYS = 6  # differing config keys shown in the terminal; files get all of them
# a language model (text run) has no accuracy: `runs` shows its lowest smooth and val loss
LM_METRICS = ("smooth_loss", "val_loss")
LM_COLUMNS = tuple(f"lowest {m}" for m in LM_METRICS)


def _has_magic(pattern: str) -> bool:
    """A glob, unless a file of that very name exists (a folder named runs[old])."""
    return any(c in pattern for c in "*?[") and not Path(pattern).exists()


def is_sweep(path: Path) -> bool:
    return (path / "sweep.yaml").is_file() and (path / "runs").is_dir()


def runs_in(path: Path) -> list[Path]:
    """The run folders a path stands for: itself, a sweep's trials, or the runs (and sweeps'
    trials) in a folder of them such as runs/ or sweeps/."""
    if is_run(path):
        return [path]
    if is_sweep(path):
        return sorted(c for c in (path / "runs").iterdir() if is_run(c))
    if not path.is_dir():
        return []
    return [r for c in sorted(path.iterdir()) if is_run(c) or is_sweep(c) for r in runs_in(c)]


def select(patterns: list[str]) -> list[Path]:
    """Run folders named by each pattern: a glob ('runs/*names*', 'sweeps/*'), a run folder,
    a sweep folder (its trials), or a folder holding either. A glob that matches no run is
    an error."""
    if not patterns:
        raise UserError("give run folders or a quoted glob, e.g. 'runs/*cifar*'")
    found = []
    for pattern in patterns:
        if _has_magic(pattern):
            matches = sorted(Path(m) for m in glob.glob(pattern))
            runs = [r for m in matches for r in runs_in(m)]
            if not runs:
                what = f"{len(matches)} paths, none of them a run or sweep folder" if matches \
                    else "nothing"
                raise UserError(f"{pattern!r} matches {what}; list the runs with `dl2424 runs`")
            found += runs
            continue
        path = Path(pattern)
        children = runs_in(path) if path.is_dir() and not is_run(path) else []
        if children:
            found += children
        else:
            read_run(path)  # a non-run folder or a missing path: raises the clear message
            found.append(path)
    return list(dict.fromkeys(found))


def sweep_of(run: Path) -> Path | None:
    """The sweep folder a trial's run folder lives in (<sweep>/runs/<run>), else None."""
    return run.parent.parent if run.parent.name == "runs" and is_sweep(run.parent.parent) \
        else None


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
    flat = flatten_all([r.config for r in runs])
    # the terminal has room for a few keys: those with the most distinct values
    spread = {k: len({repr(f.get(k)) for f in flat}) for k in keys}
    hidden = sorted(keys, key=lambda k: -spread[k])[TERMINAL_KEYS:]
    columns = ["run", "status", *keys, "step", "epoch", *metrics,
               *(["test_loss", "test_acc"] if test else []), "wall_time_s", "folder"]
    t = Table(f"{len(runs)} run{'s' if len(runs) != 1 else ''}: "
              + ("at the best validation accuracy" if at == "best" else "at the last evaluation"),
              columns, wide=("epoch", "train_cost", "val_cost", "test_loss", "folder",
                             *hidden),
              priority=("run", "status", "val_acc", *sorted(keys, key=lambda k: -spread[k]),
                        "test_acc", "step", "val_loss", "train_acc", "train_loss"))
    names = [r.name for r in runs]
    unique = len(set(names)) == len(names)
    for run, f in zip(runs, flat, strict=True):
        row = _at_row(run, at)
        t.rows.append([run.name if unique else run.id, run.status,
                       *(config_cell(f, k) for k in keys),
                       row.get("step"), row.get("epoch"), *(row.get(m) for m in metrics),
                       *(test_metrics(run, at) if test else ()),
                       run.summary.get("wall_time_s"), str(run.path)])
    t.note = (f"config keys shown: those that differ ({len(keys)})" if keys else
              "the runs' configs are identical apart from their names")
    if len(keys) > TERMINAL_KEYS:
        t.note += (f"; the terminal shows the {TERMINAL_KEYS} with the most distinct values, "
                   "--csv/--markdown write all")
    return sort_table(t, sort) if sort else t


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


def runs_table(sources: list[str | Path], status: str | None = None,
               dataset: str | None = None, name: str | None = None) -> Table:
    """The `runs` command: the runs under each source (run, sweep or folder of them, or a
    glob), oldest first, a trial with its sweep; filtered by status, dataset and name (a
    substring or a glob of the run's name)."""
    sources = [sources] if isinstance(sources, str | Path) else list(sources)
    paths = []
    for source in sources:
        if not _has_magic(str(source)) and not Path(source).exists():
            raise UserError(f"{source}: no such folder; train a model first, or give the "
                            "folder that holds the run folders")
        paths += select([str(source)]) if _has_magic(str(source)) else runs_in(Path(source))
    paths = sorted(dict.fromkeys(paths), key=lambda p: (p.name, str(p)))
    where = ", ".join(str(s) for s in sources)
    t = Table(f"runs in {where}", ["run", "sweep", "started", "status", "dataset", "model",
                                   "steps", "best val_acc", *LM_COLUMNS, "test_acc",
                                   "wall_time_s", "folder"],
              wide=("started", "folder"),  # the run folder's name starts with its start time
              priority=("run", "status", "best val_acc", *LM_COLUMNS, "sweep", "test_acc",
                        "dataset", "model", "steps", "wall_time_s"))
    broken, hidden = [], 0
    for path in paths:
        sweep = sweep_of(path)
        try:
            run = read_run(path)
        except UserError as e:
            broken.append(str(e).splitlines()[0])
            t.rows.append([path.name, sweep and sweep.name, None, "unreadable", None, None,
                           None, None, None, None, None, None, str(path)])
            continue
        if not _wanted(run, status, dataset, name):
            hidden += 1
            continue
        s = run.summary
        steps = f"{s.get('steps', '?')}/{s.get('total_steps', '?')}" if s else None
        t.rows.append([run.id, sweep and sweep.name, s.get("started"), run.status,
                       run.dataset, run.model, steps,
                       run.best.get("val_acc") if run.best else None,
                       *(run.lowest(m) if run.is_language_model else None
                         for m in LM_METRICS),
                       (s.get("test") or {}).get("acc"), s.get("wall_time_s"), str(path)])
    # no trials: no sweep column; no language model: no loss columns
    _drop_empty(t, ("sweep", *LM_COLUMNS))
    notes = [f"{hidden} more do not match the filters"] if hidden else []
    if "sweep" in t.columns:
        notes.append("a trial's folder is <sweep>/runs/<run>")
    if not t.rows and not hidden:
        notes.append(f"no run folders in {where} yet; `dl2424 train CONFIG` makes one")
    if broken:
        notes.append("unreadable: " + "; ".join(broken))
    t.note = "; ".join(notes)
    return t


def _drop_empty(t: Table, columns: tuple[str, ...]) -> None:
    """Remove those of `columns` that no row has a value in."""
    for c in columns:
        i = t.columns.index(c)
        if not any(r[i] is not None for r in t.rows):
            t.columns.pop(i)
            t.rows = [r[:i] + r[i + 1:] for r in t.rows]


def _wanted(run: Run, status: str | None, dataset: str | None, name: str | None) -> bool:
    if status and run.status != status:
        return False
    if dataset and run.dataset != dataset:
        return False
    if name:
        pattern = name if _has_magic(name) else f"*{name}*"
        return fnmatch.fnmatch(run.name, pattern) or fnmatch.fnmatch(run.id, pattern)
    return True
