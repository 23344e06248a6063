"""checkpoint.npz: params, model state and optimizer state, with its metadata inside.

The npz alone is the truth (its `meta` entry holds step, config hash, ...); the JSON
sidecar is a human-readable copy written after it. Both are written atomically.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_open, write_json
from .errors import UserError

GROUPS = ("params", "state", "optim")


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    optim: dict[str, np.ndarray]
    meta: dict


def save(path: Path, model, optimizer, meta: dict) -> None:
    arrays = {f"params/{k}": v for k, v in model.params.items()}
    arrays |= {f"state/{k}": v for k, v in model.state.items()}
    arrays |= {f"optim/{k}": v for k, v in (optimizer.state if optimizer else {}).items()}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    write_json(path.with_suffix(".json"), meta, fsync=False)  # a copy for people to read


def load(path: Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found" if not path.exists() else
                        f"{path}: not a checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as z:
            groups = {g: {} for g in GROUPS}
            for key in z.files:
                if key == "meta":
                    continue
                g, _, name = key.partition("/")
                if g not in groups:
                    raise ValueError(f"unexpected entry {key!r}")
                groups[g][name] = z[key]
            meta = json.loads(str(z["meta"]))
        if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
            raise ValueError("its 'meta' entry has no step")
    except (zipfile.BadZipFile, zlib.error, ValueError, KeyError, EOFError, OSError) as e:
        raise UserError(f"{path}: checkpoint is corrupt or truncated ({e}); "
                        "use an earlier run or retrain") from None
    return Checkpoint(groups["params"], groups["state"], groups["optim"], meta)


def read_step(path: Path, default: int) -> int:
    """The step a checkpoint was saved at, reading only its metadata; default if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
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
            target[k] = v.astype(target[k].dtype, copy=True)
    if optimizer is not None:
        optimizer.state = {k: v.copy() for k, v in ckpt.optim.items()}


def update_meta(path: Path, **changes) -> None:
    """Same arrays, metadata changed (a run made longer: its new config hash and length)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"])) | changes
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    write_json(path.with_suffix(".json"), meta, fsync=False)
