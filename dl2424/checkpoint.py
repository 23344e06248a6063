"""checkpoint.npz: params, model state and optimizer state, with its metadata inside.

The npz alone is the truth (its `meta` entry holds step, config hash, ...); the JSON
sidecar is a human-readable copy written after it. Both are written atomically.
"""

from __future__ import annotations

import json
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import limits
from .atomic import atomic_open, write_json
from .errors import UserError

GROUPS = ("params", "state", "optim")


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    optim: dict[str, np.ndarray]
    meta: dict


# np.load parses each entry's .npy header with ast.literal_eval, and CPython 3.11 (3.11.7
# at least) keeps one AST-constructor recursion counter for all threads: two threads
# parsing at once, with a garbage collection switching between them, fail with
# "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905, fixed
# upstream by #113035). Runs trained on threads (a dask worker's) read .npz files one at a
# time.
_NPZ_LOCK = threading.Lock()


@contextmanager
def read_npz(path: Path) -> Iterator[np.lib.npyio.NpzFile]:
    """np.load(path) of an .npz file, no pickles, one thread at a time."""
    with _NPZ_LOCK, np.load(path, allow_pickle=False) as z:
        yield z


def save(path: Path, model, optimizer, meta: dict) -> None:
    arrays = {f"params/{k}": v for k, v in model.params.items()}
    arrays |= {f"state/{k}": v for k, v in model.state.items()}
    arrays |= {f"optim/{k}": v for k, v in (optimizer.state if optimizer else {}).items()}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    write_json(path.with_suffix(".json"), meta, fsync=False)  # a copy for people to read


def _check_entries(z, path: Path) -> None:
    """Read every entry's npy header first: an entry must hold the bytes its header claims
    (a forged header claiming terabytes would otherwise be allocated), and all of them
    together must fit in memory."""
    total = 0
    for info in z.zip.infolist():
        with z.zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
        need = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if need > info.file_size:
            raise ValueError(f"entry {info.filename} claims shape {shape} of {dtype} "
                             f"({limits.human(need)}) but holds {limits.human(info.file_size)}")
        total += need
    limit, why = limits.memory_limit()
    if total > limit:
        raise UserError(f"{path}: its arrays need {limits.human(total)}, more than the memory "
                        f"limit of {limits.human(limit)} ({why})")


META_INTS = ("step", "total_steps", "skipped_batches", "seed")


def check_meta(meta) -> None:
    """The metadata a resume relies on has the types it was written with (true is no step)."""
    if not isinstance(meta, dict):
        raise ValueError("its 'meta' entry is not a mapping")
    if "step" not in meta:
        raise ValueError("its 'meta' entry has no step")
    for k in META_INTS:
        v = meta.get(k, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"meta {k} is {v!r}, not a count")
    sampled = meta.get("sampled", [])
    if not isinstance(sampled, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sampled):
        raise ValueError(f"meta sampled is {sampled!r}, not a list of counts")
    if not isinstance(meta.get("best"), dict | None):
        raise ValueError(f"meta best is {meta['best']!r}, not a mapping")
    if not isinstance(meta.get("config_hash", ""), str):
        raise ValueError(f"meta config_hash is {meta['config_hash']!r}, not a string")


def load(path: Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found" if not path.exists() else
                        f"{path}: not a checkpoint file")
    try:
        with read_npz(path) as z:
            if not hasattr(z, "zip"):
                raise ValueError("not an .npz archive")
            _check_entries(z, path)
            groups = {g: {} for g in GROUPS}
            for key in z.files:
                if key == "meta":
                    continue
                g, _, name = key.partition("/")
                if g not in groups:
                    raise ValueError(f"unexpected entry {key!r}")
                groups[g][name] = z[key]
            meta = json.loads(str(z["meta"]))
        check_meta(meta)
    except (zipfile.BadZipFile, zlib.error, ValueError, KeyError, EOFError, OSError,
            RecursionError) as e:
        raise UserError(f"{path}: checkpoint is corrupt or truncated ({e}); "
                        "use an earlier run or retrain") from None
    return Checkpoint(groups["params"], groups["state"], groups["optim"], meta)


def read_step(path: Path, default: int) -> int:
    """The step a checkpoint was saved at, reading only its metadata; default if unreadable."""
    try:
        with read_npz(path) as z:
            step = json.loads(str(z["meta"])).get("step")
    except (zipfile.BadZipFile, zlib.error, ValueError, KeyError, EOFError, OSError,
            AttributeError):
        return default
    return step if isinstance(step, int) else default


def restore(ckpt: Checkpoint, model, optimizer=None, where: str = "checkpoint") -> None:
    """Copy arrays into model (and optimizer); shapes must match the configured model."""
    for group, target in (("params", model.params), ("state", model.state)):
        saved = getattr(ckpt, group)
        if set(saved) != set(target) and not (group == "state" and not saved):
            raise UserError(f"{where}: {group} {sorted(saved)} do not match the model's "
                            f"{sorted(target)}; the checkpoint is from another architecture")
        for k, v in saved.items():
            if v.shape != target[k].shape:
                raise UserError(f"{where}: {group} {k} has shape {v.shape}, the model expects "
                                f"{target[k].shape}; the checkpoint is from another architecture")
            if v.dtype.kind != target[k].dtype.kind:
                raise UserError(f"{where}: {group} {k} holds {v.dtype} values, the model "
                                f"{target[k].dtype}; the checkpoint was not written by dl2424")
        for k, v in saved.items():  # in the model's own memory layout (np.empty_like)
            target[k] = np.empty_like(target[k])
            target[k][...] = v
    if optimizer is not None:
        _check_slots(ckpt.optim, model.params, where)
        optimizer.state = {k: v.copy() for k, v in ckpt.optim.items()}


def _check_slots(optim: dict, params: dict, where: str) -> None:
    """Optimizer state: a slot `<slot>.<param>` has its parameter's shape and dtype; any
    other entry (a step counter, a slot over all parameters at once) holds numbers."""
    for k, v in optim.items():
        _, _, name = k.partition(".")
        if name in params:
            ok = v.shape == params[name].shape and v.dtype == params[name].dtype
        else:
            ok = v.dtype.kind in "fiu"
        if not ok:
            raise UserError(f"{where}: optimizer state {k} ({v.dtype}, shape {v.shape}) does "
                            "not belong to this model's parameters; the checkpoint is from "
                            "another architecture or optimizer")


def update_meta(path: Path, **changes) -> None:
    """Same arrays, metadata changed (a run made longer: its new config hash and length)."""
    with read_npz(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"])) | changes
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    write_json(path.with_suffix(".json"), meta, fsync=False)
