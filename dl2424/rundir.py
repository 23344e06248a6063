"""The run folder: everything a run leaves behind, each file written atomically.

runs/<YYYYmmdd-HHMMSS>-<name>/
  config.yaml  overrides.yaml  data.json  metrics.csv  summary.json
  confusion_val.csv  confusion_test.csv  confusion/val_step<k>.csv
  checkpoint.npz (+ .json)  best.npz (+ .json)
  normalisation.npz  (image runs: the pixel statistics `predict --image` needs)
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import yaml

from . import limits
from .atomic import atomic_open, write_json, write_text
from .errors import UserError

RUNS_DIR = Path(os.environ.get("DL2424_RUNS_DIR", "runs"))
SWEEPS_DIR = Path(os.environ.get("DL2424_SWEEPS_DIR", "sweeps"))


def create(root: Path, name: str, now: float | None = None) -> Path:
    """Make a new, unique run folder; two runs started in the same second get two folders."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        path = root / (f"{stamp}-{name}" + (f"-{i}" if i > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UserError(f"{root}: could not create a unique run folder for {name!r}")


def remove_partial_files(path: Path) -> None:
    """Delete the temp files of writes a killed process never finished (see atomic.py)."""
    for tmp in [*path.glob(".*.tmp"), *path.glob("*/.*.tmp")]:
        tmp.unlink(missing_ok=True)


def write_config(path: Path, config: dict, overrides: list[str]) -> None:
    write_text(path / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    write_text(path / "overrides.yaml", yaml.safe_dump(list(overrides)))


def read_overrides(path: Path) -> list[str]:
    """The --set values a run was made with (overrides.yaml), [] when missing or unreadable."""
    try:
        items = yaml.safe_load((path / "overrides.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    return [str(i) for i in items] if isinstance(items, list) else []


def write_rows(file: Path, rows: list[dict]) -> None:
    """Rewrite a CSV in one atomic step, so it only ever holds complete rows."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    write_text(file, buf.getvalue())


def read_rows(file: Path) -> list[dict]:
    """Complete rows of a metrics CSV, values as floats (step as int)."""
    with open(file, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        if None in r or any(v in (None, "") for v in r.values()):
            break  # a partial last row (file still being written by an older writer)
        out.append({k: (int(v) if k == "step" else float(v)) for k, v in r.items()})
    return out


def write_confusion(file: Path, matrix: np.ndarray, class_names: list[str]) -> None:
    """K x K counts; rows are true classes, columns predictions, both labelled."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true\\pred", *class_names])
    for name, row in zip(class_names, matrix, strict=True):
        w.writerow([name, *(int(v) for v in row)])
    write_text(file, buf.getvalue(), fsync=False)


def write_predictions(file: Path, y, pred, p_label, class_names: list[str]) -> None:
    """One row per example of a split: true and predicted class, and the probability the
    model gave the true class (for the A1 bonus histograms of correct vs wrong)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "label", "pred", "p_label"])
    for i, (t, p, q) in enumerate(zip(y.tolist(), pred.tolist(), p_label.tolist(), strict=True)):
        w.writerow([i, class_names[t], class_names[p], f"{q:.6g}"])
    write_text(file, buf.getvalue(), fsync=False)


def read_confusion(file: Path) -> tuple[list[str], np.ndarray]:
    with open(file, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    return names, np.array([[int(v) for v in r[1:]] for r in rows[1:]], dtype=np.int64)


NORMALISATION = "normalisation.npz"


def write_normalisation(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """How an image run turned pixels into inputs (data.cifar.Normalisation.to_arrays)."""
    with atomic_open(path / NORMALISATION, "wb") as f:
        np.savez(f, **arrays)


def read_normalisation(path: Path) -> dict[str, np.ndarray]:
    with np.load(path / NORMALISATION, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


_NUMBER, _COUNT, _TEXT = (int, float), (int,), (str,)
SUMMARY_FIELDS = {  # key: the types its value may have (None always allowed)
    "name": _TEXT, "status": _TEXT, "started": _TEXT, "finished": _TEXT, "error": _TEXT,
    "dataset": _TEXT, "model": _TEXT, "host": _TEXT, "config_hash": _TEXT,
    "wall_time_s": _NUMBER, "steps_per_sec": _NUMBER,
    "steps": _COUNT, "total_steps": _COUNT, "checkpoint_step": _COUNT, "n_params": _COUNT,
    "seed": _COUNT, "skipped_batches": _COUNT, "pid": _COUNT,
    "final": (dict,), "best": (dict,), "test": (dict,), "test_at_best": (dict,),
    "versions": (dict,),
}
_KIND = {_NUMBER: "a number", _COUNT: "a whole number", _TEXT: "text"}


def _summary_problem(summary) -> str | None:
    if not isinstance(summary, dict):
        return f"a {type(summary).__name__}, not a mapping"
    for key, types in SUMMARY_FIELDS.items():
        v = summary.get(key)
        if v is not None and (not isinstance(v, types) or isinstance(v, bool)):
            return f"{key!r} is {v!r}, not {_KIND.get(types, 'a mapping')}"
        if isinstance(v, dict) and key != "versions":
            bad = [k for k, x in v.items()
                   if not isinstance(x, int | float | None) or isinstance(x, bool)]
            if bad:
                return f"{key}.{bad[0]} is {v[bad[0]]!r}, not a number"
    return None


def read_summary(path: Path) -> dict:
    """summary.json of a run folder, its fields of the types dl2424 writes; a missing file
    raises FileNotFoundError, anything else wrong a UserError."""
    file = path / "summary.json"
    try:
        summary = json.loads(limits.read_text(file, "summary.json"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{file}: unreadable ({e}); the file is corrupt") from None
    problem = _summary_problem(summary)
    if problem:
        raise UserError(f"{file}: {problem}; the file is corrupt (delete it: resume and "
                        "report work without it)")
    return summary


def write_summary(path: Path, summary: dict) -> None:
    write_json(path / "summary.json", summary)


LOCK = "train.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def claim(path: Path) -> None:
    """Mark the run folder as trained by this process, so that a second `train --resume` of
    the same run cannot interleave its writes with ours. A lock left by a dead process on
    this host is taken over. The lock appears complete or not at all (written aside, then
    hard-linked into place), so a reader never mistakes a lock being written for a broken one."""
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    lock = path / LOCK
    if lock.is_dir() or lock.is_symlink():
        raise UserError(f"{lock}: not a lock file (a {'folder' if lock.is_dir() else 'link'}); "
                        "remove it if no training is running")
    for _ in range(2):
        tmp = path / f".{LOCK}.{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps(me))
            os.link(tmp, lock)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
                host, pid = holder["host"], int(holder["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                lock.unlink(missing_ok=True)  # unreadable: left by an older, killed writer
                continue
            if host == me["host"] and not _alive(pid):
                lock.unlink(missing_ok=True)
                continue
            raise UserError(f"{path}: being trained by process {pid} on {host}; wait for it to "
                            f"finish or stop it (if that process is gone, delete {lock})"
                            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        return
    raise UserError(f"{path}: could not take {lock}; delete it if no training is running")


def release(path: Path) -> None:
    (path / LOCK).unlink(missing_ok=True)


def is_stale(summary: dict) -> bool:
    """A summary that says `running` although its process on this host is gone (kill -9)."""
    pid = summary.get("pid")
    return (summary.get("status") == "running" and isinstance(pid, int)
            and summary.get("host") == socket.gethostname() and not _alive(pid))


def trained_by(path: Path) -> int | None:
    """The live process on this host that holds the run's lock, if any."""
    lock = path / LOCK
    try:
        holder = json.loads(lock.read_text()) if lock.is_file() else None
    except (OSError, ValueError):
        return None
    if isinstance(holder, dict) and holder.get("host") == socket.gethostname() \
            and isinstance(holder.get("pid"), int) and _alive(holder["pid"]):
        return holder["pid"]
    return None


def check_removable(paths: list[Path]) -> None:
    """Refuse (before deleting anything) a run being trained or a trial of a sweep."""
    for path in paths:
        if (pid := trained_by(path)) is not None:
            raise UserError(f"{path}: being trained by process {pid}; stop it first")
        if path.parent.name == "runs" and (path.parent.parent / "sweep.yaml").is_file():
            raise UserError(f"{path}: a trial of the sweep {path.parent.parent}, listed in its "
                            "trials.csv; delete the whole sweep folder instead")


def remove(path: Path) -> None:
    """Delete a run folder (after check_removable)."""
    shutil.rmtree(path)
