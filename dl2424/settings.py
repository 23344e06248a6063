"""What the environment decides, read once when a command starts: where datasets, runs and
sweeps live, and how many BLAS threads to use. A command's option wins over the variable,
the variable over the default:

| setting | option | variable | default |
|---|---|---|---|
| data_dir | --data-dir | DL2424_DATA_DIR | a per-user cache folder |
| runs_dir | --runs-dir | DL2424_RUNS_DIR | runs |
| sweeps_dir | --sweeps-dir | DL2424_SWEEPS_DIR | sweeps |
| threads | | DL2424_THREADS | every core up to two (dl2424.nn.parallel) |

BLAS itself stays at one thread per caller (OPENBLAS_NUM_THREADS etc. win when set).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DATA_DIR, RUNS_DIR, SWEEPS_DIR = "DL2424_DATA_DIR", "DL2424_RUNS_DIR", "DL2424_SWEEPS_DIR"
THREADS = "DL2424_THREADS"
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    data_dir_origin: str  # which rule chose data_dir, for messages
    runs_dir: Path
    sweeps_dir: Path
    threads: int  # threads of the image ConvNet's batch parts (dl2424.nn.parallel)


def _pick(option: Path | None, environ: Mapping[str, str], var: str, default: str):
    if option is not None:
        return Path(option).expanduser(), None
    if environ.get(var):
        return Path(environ[var]).expanduser(), f"${var}"
    return Path(default), "default"


def read(data_dir: Path | None = None, runs_dir: Path | None = None,
         sweeps_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of this command: its options, else the environment, else defaults."""
    env = os.environ if environ is None else environ
    data, origin = _pick(data_dir, env, DATA_DIR, "")
    if origin == "default":
        import pooch  # only when the cache folder is the answer

        data = Path(pooch.os_cache("dl2424"))
    return Settings(
        data_dir=data,
        data_dir_origin={None: "--data-dir", "default": "the default cache folder"}.get(
            origin, origin),
        runs_dir=_pick(runs_dir, env, RUNS_DIR, "runs")[0],
        sweeps_dir=_pick(sweeps_dir, env, SWEEPS_DIR, "sweeps")[0],
        threads=_threads(env),
    )


def _threads(env: Mapping[str, str]) -> int:
    from .nn.parallel import default_threads  # its rule; NumPy is loaded by now

    return default_threads(env)


def limit_blas_threads(environ=os.environ) -> None:
    """One BLAS thread unless its own variables say otherwise. Must run before NumPy loads:
    the matrices of these networks are small, and OpenBLAS threads spinning on them cost
    more than they give (20,000 surname-ConvNet updates: 19 s CPU with one thread, 511 s
    wall with two on a busy machine). The image ConvNet uses the cores itself, one batch
    part per thread (DL2424_THREADS, dl2424.nn.parallel)."""
    for var in BLAS_VARS:
        environ.setdefault(var, "1")
