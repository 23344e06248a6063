"""A sweep folder and the loop that fills it with trials.

sweeps/<YYYYmmdd-HHMMSS>-<name>/
  sweep.yaml      spec: the resolved spec (base inline, defaults filled in);
                  refined_from: the coarse sweep, its best trials and the narrowed ranges;
                  trials: id and values of every trial, fixed when the sweep is made
  trials.csv      trial, <searched keys>, status (ok|failed|running|pending),
                  best_<metric>, final_<metric>, wall_s, run, error — one row per trial,
                  rewritten atomically whenever a trial changes
  sessions.json   each time the sweep ran: backend, trials run, wall time
  runs/           each trial's ordinary run folder, <time>-<base name>-t<id>
  plots/          the metric against each searched key

Each trial runs the base experiment with its values applied as `--set` overrides (and
`name=<base name>-t<id>`). --resume reruns every trial that is not ok: one whose run
was interrupted with a checkpoint continues that run; the others start a new run folder
(an earlier failed run folder of the trial stays where it was).
"""

from __future__ import annotations

import copy
import csv
import json
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import __version__, rundir
from ..atomic import write_json, write_text
from ..config import apply_overrides, validate
from ..errors import UserError
from ..trainer import BASIC_METRICS
from .execute import TrialTask, find_run
from .sample import centre_spaces, plan_trials
from .spec import Search, from_resolved

STATUSES = ("ok", "failed", "running", "pending")


@dataclass
class Trial:
    id: int
    values: dict
    status: str = "pending"
    best: float | None = None  # the metric in the run's best-val-acc row
    final: float | None = None  # the metric in the run's last row
    run: str = ""  # relative to the sweep folder when inside it
    error: str = ""
    wall_s: float | None = None


@dataclass
class Sweep:
    path: Path
    search: Search
    trials: list[Trial]
    refined_from: dict | None = None

    @property
    def spec(self):
        return self.search.spec

    def score(self, t: Trial) -> float | None:
        return t.best if self.spec.metric_from == "best" else t.final

    def ranked(self) -> list[Trial]:
        """ok trials with a score, best first (ties: lower trial id first)."""
        scored = [t for t in self.trials if t.status == "ok" and self.score(t) is not None]
        sign = -1 if self.spec.direction == "max" else 1
        return sorted(scored, key=lambda t: (sign * self.score(t), t.id))

    def run_name(self, t: Trial) -> str:
        return f"{self.search.base.get('name', 'trial')}-t{t.id:03d}"

    def overrides(self, t: Trial) -> list[str]:
        return [f"name={self.run_name(t)}",
                *(f"{k}={format_value(v)}" for k, v in t.values.items())]

    # -- files ------------------------------------------------------------------------
    def write_trials(self) -> None:
        m = self.spec.metric
        rows = [{"trial": t.id, **{k: format_value(v) for k, v in t.values.items()},
                 "status": t.status, f"best_{m}": _cell(t.best), f"final_{m}": _cell(t.final),
                 "wall_s": _cell(t.wall_s), "run": t.run, "error": t.error}
                for t in self.trials]
        rundir.write_rows(self.path / "trials.csv", rows)

    def log_session(self, entry: dict) -> None:
        file = self.path / "sessions.json"
        sessions = json.loads(file.read_text()) if file.is_file() else []
        write_json(file, [*sessions, entry])


def format_value(v) -> str:
    """A value as `--set` text that YAML reads back to the same value: 1e-05 → 1.0e-05,
    [50, 50] → [50, 50], 'relu' → relu, the string 'true' → 'true'."""
    text = yaml.safe_dump(v, default_flow_style=True, sort_keys=False, width=10**6).strip()
    return text.removesuffix("...").strip()


def _cell(v) -> str:
    return "" if v is None else repr(v)


# ---------------------------------------------------------------------------- making one

def best_centres(coarse: Sweep, k: int) -> list[Trial]:
    best = coarse.ranked()[:k]
    if not best:
        raise UserError(f"--from {coarse.path}: no trial finished ok with a "
                        f"{coarse.spec.metric}; nothing to refine around")
    return best


def _refinement(search: Search, coarse: Sweep | None) -> tuple[list[dict] | None, dict | None]:
    spec = search.spec
    if spec.refine is None and coarse is not None:
        raise UserError(f"--from: {search.source} has no refine: block, so it cannot narrow "
                        "around a previous sweep; add refine: {top_k: 3, factor: 2}")
    if spec.refine is None:
        return None, None
    if coarse is None:
        raise UserError(f"{search.source} refines a previous sweep: give --from "
                        "sweeps/<coarse-id>")
    centres = best_centres(coarse, spec.refine.top_k)
    shared = [k for k in spec.space if k in centres[0].values]
    if not shared:
        raise UserError(f"--from {coarse.path}: it searched {', '.join(coarse.spec.space)}, "
                        f"none of this spec's keys ({', '.join(spec.space)})")
    values = [{k: c.values[k] for k in shared} for c in centres]
    spaces = centre_spaces(spec.space, values, spec.refine.factor)
    info = {"sweep": str(coarse.path), "metric": coarse.spec.metric,
            "metric_from": coarse.spec.metric_from, "direction": coarse.spec.direction,
            "centres": [{"trial": c.id, "score": coarse.score(c), "values": v,
                         "space": {k: d.model_dump(mode="json") for k, d in s.items()}}
                        for c, v, s in zip(centres, values, spaces, strict=True)]}
    return values, info


def check_trials(sweep: Sweep) -> None:
    """Validate every trial's config now, so a bad space key fails before anything runs."""
    bad = []
    for t in sweep.trials:
        raw = apply_overrides(copy.deepcopy(sweep.search.base), sweep.overrides(t))
        try:
            validate(raw, f"trial {t.id} ({', '.join(sweep.overrides(t)[1:])})")
        except UserError as e:
            bad.append(str(e))
    if bad:
        more = f"\n({len(bad) - 1} more trial(s) are invalid too)" if len(bad) > 1 else ""
        raise UserError(f"{sweep.search.source}: a trial's config is invalid; check the space "
                        f"keys and ranges against the base config\n{bad[0]}{more}")


def check_metric(sweep: Sweep, data_dir: Path) -> None:
    """A metric beyond the columns every run has (val_unseen_acc, ...) must be one the
    dataset gives; the dataset is read here to know, before any trial trains."""
    m = sweep.spec.metric
    if m in BASIC_METRICS:
        return
    from ..data import load_dataset
    from ..trainer import metric_columns

    exp = validate(apply_overrides(copy.deepcopy(sweep.search.base),
                                   sweep.overrides(sweep.trials[0])), sweep.search.source)
    columns = metric_columns(load_dataset(exp.data, data_dir, exp.dtype))
    if m not in columns:
        raise UserError(f"{sweep.search.source}: metric: {m!r} is not a column of this "
                        f"dataset's metrics.csv; use one of {', '.join(columns)}")


def create(search: Search, sweeps_dir: Path, coarse: Sweep | None = None,
           data_dir: Path | None = None) -> Sweep:
    """Plan and check every trial (and the metric, given the data), then make the sweep
    folder with all trials pending."""
    centres, refined_from = _refinement(search, coarse)
    trials = [Trial(i, v) for i, v in enumerate(plan_trials(search.spec, centres))]
    sweep = Sweep(Path(), search, trials, refined_from)
    check_trials(sweep)
    if data_dir is not None:
        check_metric(sweep, data_dir)
    sweep.path = rundir.create(Path(sweeps_dir), search.spec.name)
    doc = {"spec": search.resolved(), "source": search.source, "dl2424": __version__,
           "refined_from": refined_from,
           "trials": [{"trial": t.id, "values": t.values} for t in trials]}
    write_text(sweep.path / "sweep.yaml", yaml.safe_dump(doc, sort_keys=False))
    (sweep.path / "runs").mkdir()
    sweep.write_trials()
    return sweep


# ---------------------------------------------------------------------------- reading one

def _float(s: str) -> float | None:
    return float(s) if s not in ("", None) else None


def load(path: Path) -> Sweep:
    """A sweep folder as it was left: the plan from sweep.yaml, progress from trials.csv."""
    path = Path(path)
    if not (path / "sweep.yaml").is_file():
        raise UserError(f"{path}: not a sweep folder (no sweep.yaml); give a folder under "
                        "sweeps/")
    doc = yaml.safe_load((path / "sweep.yaml").read_text(encoding="utf-8"))
    search = from_resolved(doc["spec"], str(path / "sweep.yaml"))
    trials = [Trial(d["trial"], d["values"]) for d in doc["trials"]]
    sweep = Sweep(path, search, trials, doc.get("refined_from"))
    if (path / "trials.csv").is_file():
        with open(path / "trials.csv", newline="", encoding="utf-8") as f:
            rows = {int(r["trial"]): r for r in csv.DictReader(f)}
        m = search.spec.metric
        for t in trials:
            r = rows.get(t.id)
            if r is None or r.get("status") not in STATUSES:
                continue
            t.status, t.run, t.error = r["status"], r.get("run", ""), r.get("error", "")
            t.best, t.final = _float(r.get(f"best_{m}")), _float(r.get(f"final_{m}"))
            t.wall_s = _float(r.get("wall_s"))
    return sweep


# ---------------------------------------------------------------------------- running one

class SweepInterrupted(Exception):
    """^C: the sweep stopped; trials not finished are left pending for --resume."""


def _resumable(sweep: Sweep, t: Trial) -> str | None:
    """The run folder to continue, if the trial's last run stopped with a checkpoint (or
    finished unrecorded). A trial that was in flight when the sweep was killed has no run
    recorded: its folder is found by name, continued, or — killed before its first
    checkpoint, so holding nothing to continue — removed, so no trial has two folders."""
    if t.run:
        run = sweep.path / t.run
    else:
        run = find_run(sweep.path / "runs", sweep.run_name(t))
        if run is None:
            return None
        if not (run / rundir.CHECKPOINT).is_file():
            if rundir.trained_by(run) is None:
                shutil.rmtree(run, ignore_errors=True)
            return None
    if not (run / rundir.CHECKPOINT).is_file() or not (run / rundir.SUMMARY).is_file():
        return None
    try:
        status = rundir.read_summary(run).get("status")
    except (OSError, UserError):  # a damaged record: the checkpoint alone cannot say
        return None
    resumable = ("running", "interrupted") + (("completed",) if not t.run else ())
    return str(run.resolve()) if status in resumable else None



def _task(sweep: Sweep, t: Trial, data_dir: Path) -> TrialTask:
    return TrialTask(trial=t.id, name=sweep.run_name(t), base=sweep.search.base,
                     overrides=sweep.overrides(t), data_dir=str(Path(data_dir).resolve()),
                     runs_dir=str((sweep.path / "runs").resolve()),
                     metric=sweep.spec.metric, resume_run=_resumable(sweep, t))


def _record(sweep: Sweep, t: Trial, out: dict) -> None:
    t.status, t.error, t.wall_s = out["status"], out["error"], out["wall_s"]
    t.best, t.final = out["best"], out["final"]
    if out["run"]:
        run = Path(out["run"]).resolve()
        home = sweep.path.resolve()
        t.run = str(run.relative_to(home)) if run.is_relative_to(home) else str(run)


def _result(future, t: Trial) -> dict:
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 — a dead worker fails its trial, not the sweep
        return {"trial": t.id, "status": "failed", "best": None, "final": None, "run": "",
                "error": f"worker lost: {type(e).__name__}: {e}", "wall_s": None}


def run(sweep: Sweep, backend, data_dir: Path, fail_fast: bool = False,
        on_done: Callable[[Trial], None] = lambda t: None,
        on_note: Callable[[str], None] = lambda s: None) -> dict:
    """Run every trial that is not ok, keeping backend.slots() of them in flight.

    trials.csv is rewritten at every change. A failed trial is recorded and the sweep goes
    on; with fail_fast no new trial starts after one fails (running ones finish). The first
    ^C lets running trials stop at a checkpoint (local pool) or abandons them (dask); they
    are left pending. Returns what this session did (also appended to sessions.json).
    """
    todo = deque(t for t in sweep.trials if t.status != "ok")
    in_flight: dict = {}
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%S"), time.perf_counter()
    stopping, n_run = None, 0

    def finish(outcome):
        entry = {"started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "backend": backend.describe(), "trials_run": n_run, "outcome": outcome,
                 "wall_s": round(time.perf_counter() - t0, 3)}
        sweep.log_session(entry)
        return entry

    def abandon():
        backend.cancel(list(in_flight))
        for t in in_flight.values():
            t.status, t.error = "pending", "interrupted: the sweep was stopped"
        sweep.write_trials()
        finish("interrupted")
        raise SweepInterrupted(sweep.path) from None

    try:
        while in_flight or (todo and stopping is None):
            stopping, n = _step(sweep, backend, data_dir, todo, in_flight, stopping, fail_fast,
                                on_done, on_note, abandon)
            n_run += n
    except KeyboardInterrupt:  # a signal outside the wait (while writing trials.csv)
        abandon()
    if stopping == "interrupted":
        finish("interrupted")
        raise SweepInterrupted(sweep.path)
    return finish(stopping or "done")


def _step(sweep, backend, data_dir, todo, in_flight, stopping, fail_fast, on_done, on_note,
          abandon) -> tuple[str | None, int]:
    """Fill the free slots, wait for a trial to end, record it. The first signal lets the
    running trials stop at a checkpoint (SIGTERM to the sweep alone is passed on to them),
    a second — or any on a backend that cannot ask — abandons them as pending."""
    while todo and stopping is None and len(in_flight) < backend.slots():
        t = todo.popleft()
        in_flight[backend.submit(_task(sweep, t, data_dir))] = t
        t.status, t.error = "running", ""
        sweep.write_trials()
    try:
        done = backend.wait_any(list(in_flight))
    except KeyboardInterrupt:
        if stopping == "interrupted" or not backend.graceful:
            abandon()
        backend.stop_workers()
        on_note("stopping: running trials save a checkpoint and stop "
                "(^C again to abandon them)")
        return "interrupted", 0
    n_run = 0
    for future in done:
        t = in_flight.pop(future)
        _record(sweep, t, _result(future, t))
        n_run += 1
        sweep.write_trials()
        on_done(t)
        if t.status == "failed" and fail_fast and stopping is None:
            stopping = "fail-fast"
            on_note(f"--fail-fast: trial {t.id} failed; no new trials start")
    return stopping, n_run

