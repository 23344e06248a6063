"""The run folder: every file a run leaves behind, its name and format, written atomically
and read back here, and nowhere else. The trainer reaches it through `Recorder` (its hooks);
experiment, report, predict, ensemble, compare and runs read it through the functions below.

runs/<YYYYmmdd-HHMMSS>-<name>/
  config.yaml  overrides.yaml  data.json  metrics.csv  summary.json  class_counts.json
  confusion_val.csv  confusion_test.csv  confusion/val_step<k>.csv  predictions_test.csv
  checkpoint.npz (+ .json)  best.npz (+ .json)  snapshots/cycle<k>.npz
  normalisation.npz  (image runs: the pixel statistics `predict --image` needs)
  samples.json  (language models: the text sampled during training)
  train.lock  (while a process trains the run)
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

from . import checkpoint, limits
from .atomic import atomic_open, write_json, write_text
from .config import Experiment, read_yaml, validate
from .data.bundle import DataInfo
from .errors import UserError
from .hooks import Reporter

CONFIG, OVERRIDES, DATA = "config.yaml", "overrides.yaml", "data.json"
METRICS, SUMMARY, CLASS_COUNTS = "metrics.csv", "summary.json", "class_counts.json"
CHECKPOINT, BEST, SNAPSHOTS = "checkpoint.npz", "best.npz", "snapshots"
CONFUSIONS, PREDICTIONS = "confusion", "predictions_test.csv"
NORMALISATION, SAMPLES = "normalisation.npz", "samples.json"
LOCK = "train.lock"
MARKERS = (CONFIG, SUMMARY)  # a folder with either is a run folder
REQUIRED_COLUMNS = ("step", "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")
TEXT_COLUMNS = ("step", "epoch", "lr", "loss", "smooth_loss")  # language models (seqtrain)


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


def is_run(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in MARKERS)


# ---------------------------------------------------------------------------- config, data

def write_config(path: Path, config: dict, overrides: list[str]) -> None:
    write_text(path / CONFIG, yaml.safe_dump(config, sort_keys=False))
    write_text(path / OVERRIDES, yaml.safe_dump(list(overrides)))


def load_run_config(run: Path) -> Experiment:
    """The validated config a run was trained with."""
    if not run.is_dir():
        what = "is a file, not a run folder" if run.exists() else "no such run folder"
        raise UserError(f"{run}: {what}; give a folder under runs/")
    if not (run / CONFIG).is_file():
        raise UserError(f"{run}: not a run folder (no {CONFIG}); give a folder under runs/")
    return validate(read_yaml(run / CONFIG), str(run / CONFIG))


def write_info(path: Path, info: DataInfo) -> None:
    write_json(path / DATA, info.to_json())


def load_info(run: Path) -> DataInfo:
    """data.json of a run folder, checked field by field (a character encoder against the
    model's vocabulary, name length and classes too); damage is a UserError."""
    from .data.names import Encoder

    file = run / DATA
    try:
        d = json.loads(limits.read_text(file, DATA))
    except FileNotFoundError:
        raise UserError(f"{run}: no {DATA}; not a run folder made by dl2424 train") from None
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{file}: unreadable ({e}); the run folder was damaged") from None
    info = DataInfo.from_json(d, str(file))
    if info.encoder is not None:
        Encoder.of(info, str(file))
    return info


# ---------------------------------------------------------------------------- metrics


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


def read_metrics(file: Path, required=REQUIRED_COLUMNS) -> tuple[list[dict], bool]:
    """Complete rows of metrics.csv (step as int, the rest float) and whether a partial
    last line was dropped. A row is complete when its line ends in a newline and it has
    every column: the trainer writes the file atomically, other writers might not. A
    language model's file (smooth_loss) needs TEXT_COLUMNS instead."""
    try:
        text = limits.read_text(file, "metrics table", limits.TABLE_CAP)
    except UnicodeDecodeError as e:
        raise UserError(f"{file}: not UTF-8 text ({e.reason} at byte {e.start}); the file is "
                        "corrupt") from None
    lines = text.split("\n")
    partial = lines.pop() != ""  # text after the last newline: an unfinished line
    reader = csv.DictReader(lines)
    rows = []
    for lineno, r in enumerate(reader, start=2):
        if None in r or any(v in (None, "") for v in r.values()):
            partial = True
            break
        try:
            rows.append({k: (int(v) if k == "step" else float(v)) for k, v in r.items()})
        except ValueError:
            raise UserError(f"{file}: line {lineno} holds a value that is not a number; the "
                            "file is corrupt (delete the bad line or retrain)") from None
    if required is REQUIRED_COLUMNS and "smooth_loss" in (reader.fieldnames or ()):
        required = TEXT_COLUMNS
    missing = [c for c in required if reader.fieldnames and c not in reader.fieldnames]
    if missing:
        raise UserError(f"{file}: missing column(s) {', '.join(missing)}; not a dl2424 "
                        "metrics file")
    return rows, partial


def read_rows(file: Path) -> list[dict]:
    """The complete rows of a metrics CSV of any columns (see read_metrics)."""
    return read_metrics(file, required=("step",))[0]


def write_confusion(file: Path, matrix: np.ndarray, class_names: list[str]) -> None:
    """K x K counts; rows are true classes, columns predictions, both labelled."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true\\pred", *class_names])
    for name, row in zip(class_names, matrix, strict=True):
        w.writerow([name, *(int(v) for v in row)])
    write_text(file, buf.getvalue(), fsync=False)


def confusion_file(path: Path, split: str) -> Path:
    """The last evaluation's validation confusion ("val"), or the test one ("test")."""
    return path / f"confusion_{split}.csv"


def kept_confusion_file(path: Path, step: int) -> Path:
    return path / CONFUSIONS / f"val_step{step}.csv"


def kept_confusions(path: Path) -> list[tuple[int, Path]]:
    """(step, file) of every kept confusion/val_step<k>.csv, by step."""
    folder = path / CONFUSIONS
    if not folder.is_dir():
        return []
    found = [(int(f.stem.removeprefix("val_step")), f) for f in folder.glob("val_step*.csv")
             if f.stem.removeprefix("val_step").isdigit()]
    return sorted(found, key=lambda t: t[0])


def write_evaluation(path: Path, rows: list[dict], val_confusion: np.ndarray | None,
                     class_names: list[str], keep: bool) -> None:
    """What one evaluation leaves: metrics.csv with every row so far, confusion_val.csv,
    and (train.keep_confusions) its confusion/val_step<k>.csv; a language model has no
    confusion (None), only its rows."""
    write_rows(path / METRICS, rows)
    if val_confusion is None:
        return
    write_confusion(confusion_file(path, "val"), val_confusion, class_names)
    if keep:
        (path / CONFUSIONS).mkdir(exist_ok=True)
        write_confusion(kept_confusion_file(path, rows[-1]["step"]), val_confusion, class_names)


def write_test(path: Path, confusion: np.ndarray, y, pred, p_label,
               class_names: list[str]) -> None:
    """The test pass of the final parameters: confusion_test.csv and predictions_test.csv."""
    write_confusion(confusion_file(path, "test"), confusion, class_names)
    write_predictions(path / PREDICTIONS, y, pred, p_label, class_names)


def write_predictions(file: Path, y, pred, p_label, class_names: list[str]) -> None:
    """One row per example of a split: true and predicted class, and the probability the
    model gave the true class (for the A1 bonus histograms of correct vs wrong)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "label", "pred", "p_label"])
    for i, (t, p, q) in enumerate(zip(y.tolist(), pred.tolist(), p_label.tolist(), strict=True)):
        w.writerow([i, class_names[t], class_names[p], f"{q:.6g}"])
    write_text(file, buf.getvalue(), fsync=False)


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(p_label, correct) per test example from predictions_test.csv, or None."""
    f = path / PREDICTIONS
    if not f.is_file():
        return None
    with open(f, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    return (np.array([float(r["p_label"]) for r in rows]),
            np.array([r["label"] == r["pred"] for r in rows]))


def read_confusion(file: Path) -> tuple[list[str], np.ndarray]:
    with open(file, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    return names, np.array([[int(v) for v in r[1:]] for r in rows[1:]], dtype=np.int64)


# ---------------------------------------------------------------------------- parameters

def params_file(path: Path, kind: str) -> Path:
    """Where parameters of a kind go: "last" (checkpoint.npz, to resume from), "best" (by
    validation accuracy) or "cycle<k>" (snapshots/cycle<k>.npz)."""
    if kind == "last":
        return path / CHECKPOINT
    if kind == "best":
        return path / BEST
    return path / SNAPSHOTS / f"{kind}.npz"


def save_params(path: Path, kind: str, model, optimizer, meta: dict) -> None:
    file = params_file(path, kind)
    file.parent.mkdir(exist_ok=True)
    checkpoint.save(file, model, optimizer, meta)


def weights_file(path: Path, which: str = "best") -> Path:
    """The parameters to use a trained run with: best.npz for "best" when the run has one
    (else the last checkpoint), checkpoint.npz for "last"."""
    best = path / BEST
    return best if which == "best" and best.is_file() else path / CHECKPOINT


def snapshot_files(path: Path) -> list[Path]:
    """snapshots/cycle<k>.npz of a run, by cycle."""
    files = [f for f in (path / SNAPSHOTS).glob("cycle*.npz")
             if f.stem.removeprefix("cycle").isdigit()]
    return sorted(files, key=lambda f: int(f.stem.removeprefix("cycle")))


def trim(path: Path, step: int, rows: list[dict]) -> None:
    """Cut a run folder back to a checkpoint's step before resuming it: metrics rows and
    kept confusions after the step go, and so does a best.npz saved after it (or
    unreadable), so the steps after it are recomputed exactly as an uninterrupted run
    does them."""
    remove_partial_files(path)
    write_rows(path / METRICS, [r for r in rows if r["step"] <= step])
    for k, f in kept_confusions(path):
        if k > step:
            f.unlink()
    best = path / BEST
    if best.is_file() and checkpoint.read_step(best, default=step + 1) > step:
        best.unlink()
        best.with_suffix(".json").unlink(missing_ok=True)


class Recorder(Reporter):
    """The trainer's hooks that write the run folder."""

    def __init__(self, path: Path, class_names: list[str], keep_confusions: bool):
        self.path, self.class_names, self.keep = path, class_names, keep_confusions

    def on_metrics(self, rows, val_confusion):
        write_evaluation(self.path, rows, val_confusion, self.class_names, self.keep)

    def on_checkpoint(self, kind, model, optimizer, meta):
        save_params(self.path, kind, model, optimizer, meta)

    def on_samples(self, samples):
        write_samples(self.path, samples)


# ---------------------------------------------------------------------------- samples

def write_samples(path: Path, samples: list[dict]) -> None:
    """samples.json: every text a language model sampled so far, with its update step."""
    write_json(path / SAMPLES, samples)


def _read_json(path: Path, name: str):
    """(file, its JSON value) of a run folder's file; a missing file raises
    FileNotFoundError, an unreadable one a UserError."""
    file = path / name
    try:
        return file, json.loads(limits.read_text(file, name))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{file}: unreadable ({e}); the file is corrupt") from None


def read_samples(path: Path) -> list[dict]:
    """samples.json of a run folder (a missing file raises FileNotFoundError, a damaged one
    a UserError)."""
    file, samples = _read_json(path, SAMPLES)
    if not isinstance(samples, list) or not all(isinstance(s, dict) for s in samples):
        raise UserError(f"{file}: not a list of samples; the file is corrupt")
    return samples


# ---------------------------------------------------------------------------- the rest

def write_class_counts(path: Path, counts: dict) -> None:
    write_json(path / CLASS_COUNTS, counts)


def write_normalisation(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """How an image run turned pixels into inputs (data.cifar.Normalisation.to_arrays)."""
    with atomic_open(path / NORMALISATION, "wb") as f:
        np.savez(f, **arrays)


def read_normalisation(path: Path) -> dict[str, np.ndarray]:
    with checkpoint.read_npz(path / NORMALISATION) as z:
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
    file, summary = _read_json(path, SUMMARY)
    problem = _summary_problem(summary)
    if problem:
        raise UserError(f"{file}: {problem}; the file is corrupt (delete it: resume and "
                        "report work without it)")
    return summary


def write_summary(path: Path, summary: dict) -> None:
    write_json(path / SUMMARY, summary)


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
