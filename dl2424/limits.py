"""How big things may get, checked before anything is allocated or trained.

- Text files a user or a run folder hands us are read with a size cap (READ_CAP for
  configs, specs and run-folder JSON; TABLE_CAP for metrics/trials tables), so a path
  such as /dev/zero is refused instead of filling memory.
- A model's parameters and activations are estimated from its config (ModelParams.footprint)
  and refused beyond memory_limit(): MEMORY_FRACTION of this machine's memory (or of its
  cgroup limit), overridable with DL2424_MEMORY_LIMIT (bytes, or with a K/M/G/T suffix).
- A run longer than MAX_STEPS updates, or with more than MAX_EVALUATIONS evaluations, is
  refused: it would not end in any useful time, and every evaluation rewrites metrics.csv.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

READ_CAP = 8 << 20  # bytes: a config, a search spec, data.json, summary.json, a lock
TABLE_CAP = 512 << 20  # bytes: metrics.csv, trials.csv, a confusion matrix
MAX_STEPS = 10**8  # update steps of one run (about a day at a fast 1,000 steps/s)
MAX_EVALUATIONS = 10**5  # evaluations of one run (rows of metrics.csv)
MEMORY_FRACTION = 0.8
# Bytes per parameter value beyond the parameter itself: its gradient, up to two optimizer
# slots (Adam), and a copy while best.npz is evaluated or a checkpoint is written.
PARAM_COPIES = 5
# Forward values, their cache and the backward pass's gradients, per training example;
# evaluation runs forward only, in chunks the models size to stay below that (Model.scores).
ACTIVATION_COPIES = 3


def read_bytes(path: Path, what: str = "file", cap: int = READ_CAP) -> bytes:
    """The file's bytes, refusing one larger than `cap` (devices and pipes included)."""
    with open(path, "rb") as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise UserError(f"{path}: larger than {human(cap)}, too big to be a {what}; "
                        "check the path")
    return data


def read_text(path: Path, what: str = "file", cap: int = READ_CAP) -> str:
    """UTF-8 text with a size cap; UnicodeDecodeError and OSError propagate."""
    return read_bytes(path, what, cap).decode("utf-8")


def human(n: float) -> str:
    if n >= 1 << 70:  # beyond any memory (and beyond what a float holds, for huge ints)
        return "1,000+ PiB"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def _parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    return int(float(text.rstrip("KMGT")) * scale)


def machine_memory() -> int:
    """Physical memory, or the cgroup's limit when lower (containers, batch jobs)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def memory_limit() -> tuple[int, str]:
    """(bytes a run may use, how that was decided)."""
    env = os.environ.get("DL2424_MEMORY_LIMIT")
    if env:
        try:
            return _parse_size(env), "DL2424_MEMORY_LIMIT"
        except ValueError:
            raise UserError(f"DL2424_MEMORY_LIMIT={env!r}: give bytes, or a number with "
                            "K, M, G or T") from None
    total = machine_memory()
    return int(MEMORY_FRACTION * total), (f"{MEMORY_FRACTION:.0%} of this machine's "
                                          f"{human(total)}")


@dataclass(frozen=True)
class Footprint:
    """What a model holds: parameter values, and activation values per example."""

    params: int
    activations: int  # values kept per example in one forward + backward pass

    def bytes(self, batch: int, itemsize: int) -> int:
        return itemsize * (PARAM_COPIES * self.params
                           + ACTIVATION_COPIES * self.activations * max(batch, 1))


def check_memory(footprint: Footprint | None, batch: int, itemsize: int, what: str) -> None:
    """Refuse a model whose estimate exceeds memory_limit(), with both numbers."""
    if footprint is None:
        return
    need = footprint.bytes(batch, itemsize)
    limit, why = memory_limit()
    if need > limit:
        raise UserError(
            f"{what}: needs about {human(need)} of memory ({_count(footprint.params)} "
            f"parameters; {_count(footprint.activations)} activation values per example, "
            f"batches of {batch}), "
            f"more than the limit of {human(limit)} ({why}); make the model smaller "
            "(fewer or narrower layers, less padding) or the batch smaller")


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"~10^{len(str(n)) - 1}"


def check_length(total_steps: int, eval_every: int) -> None:
    if total_steps > MAX_STEPS:
        raise UserError(f"train: {total_steps:,} update steps is more than the {MAX_STEPS:,} a "
                        "run may have (it would not finish); give fewer epochs, steps or cycles")
    evaluations = total_steps // max(eval_every, 1)
    if evaluations > MAX_EVALUATIONS:
        raise UserError(f"train.eval_every: {eval_every} gives {evaluations:,} evaluations, more "
                        f"than {MAX_EVALUATIONS:,} (each one is a row of metrics.csv); evaluate "
                        f"less often, e.g. every {-(-total_steps // MAX_EVALUATIONS)} steps")
