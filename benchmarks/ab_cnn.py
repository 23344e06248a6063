"""Before/after for the image ConvNet: this tree's `cnn` against another git revision's, in one
process, update rounds interleaved.

On a shared host whose speed drifts by tens of percent from one second to the next, two runs
of bench_cnn.py minutes apart cannot resolve a 5 % change; two models stepping in turn in one
process can. The revision's `dl2424` package is extracted (git archive) under another name,
so both import side by side. Each round times `--per-round` updates of each, alternating
which goes first; the claim is the median over rounds of new / old. `--eval` times
evaluation instead (`model.scores` on EVAL_IMAGES images, after two updates so that the
batch-norm averages are set).

    .venv/bin/python benchmarks/ab_cnn.py REV [--rows 0 4] [--threads 1 2] [--rounds 12]
                                              [--eval]
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
from bench_cnn import IMAGE, LR, ROWS, K  # noqa: E402
from common import paired_ratios  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EVAL_IMAGES = 500


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the git revision to compare against (e.g. HEAD~3, main)")
    ap.add_argument("--rows", type=int, nargs=2, default=[0, len(ROWS) - 1],
                    metavar=("FIRST", "LAST"), help="which rows of bench_cnn (0-based)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--eval", action="store_true",
                    help=f"time model.scores on {EVAL_IMAGES} images, not updates")
    return ap.parse_args()


def extract(rev: str, into: Path) -> str:
    """The revision's dl2424 package, importable as dl2424_old."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "dl2424"], check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    (into / "dl2424").rename(into / "dl2424_old")
    sys.path.insert(0, str(into))
    return "dl2424_old"


def stepper(pkg: str, keys: dict, n: int, threads: int, evaluate: bool = False):
    """One Adam update of package pkg's cnn on a fixed random batch, as bench_cnn builds it;
    with `evaluate`, the scores of EVAL_IMAGES fixed random images instead."""
    for mod in (".models.cnn", ".optim"):
        importlib.import_module(pkg + mod)
    importlib.import_module(pkg + ".nn.parallel").set_threads(threads)
    reg = importlib.import_module(pkg + ".registry")
    info = importlib.import_module(pkg + ".data.bundle").DataInfo(
        (int(np.prod(IMAGE)),), [str(k) for k in range(K)], {"image_shape": list(IMAGE)})
    model = reg.MODELS["cnn"].factory(reg.MODELS["cnn"].params.model_validate(keys), info,
                                      np.dtype(np.float32), np.random.default_rng(0))
    opt = reg.OPTIMIZERS["adam"].factory(reg.OPTIMIZERS["adam"].params())
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, info.input_shape[0]), dtype=np.float32)
    y = rng.integers(0, K, n)

    def step():
        _, _, grads = model.loss(X, y, train=True, rng=np.random.default_rng(2))
        opt.step(model.params, grads, LR)

    if not evaluate:
        return step
    step()
    step()
    images = rng.standard_normal((EVAL_IMAGES, X.shape[1]), dtype=np.float32)
    return lambda: model.scores(images)


def compare(old: str, keys: dict, n: int, per_round: int, threads: int, rounds: int,
            evaluate: bool):
    steps = {k: stepper(pkg, keys, n, threads, evaluate)
             for k, pkg in (("old", old), ("new", "dl2424"))}
    for step in steps.values():  # buffers, optimizer state, thread pools
        step()
        step()
    times = {k: [] for k in steps}
    for r in range(rounds):
        for k in (("old", "new") if r % 2 == 0 else ("new", "old")):
            t0 = time.perf_counter()
            for _ in range(per_round):
                steps[k]()
            times[k].append(1e3 * (time.perf_counter() - t0) / per_round)
    return min(times["old"]), min(times["new"]), paired_ratios(times["new"], times["old"])


def main():
    opts = parse()
    what = f"scores of {EVAL_IMAGES} images" if opts.eval else "update"
    table = Table(title=f"cnn ms per {what}: this tree against {opts.rev}, "
                        f"{opts.rounds} interleaved rounds in one process")
    for col in ("network", "threads", f"{opts.rev} ms", "this tree ms", "new / old",
                "quartiles"):
        table.add_column(col, justify="left" if col == "network" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        old = extract(opts.rev, Path(tmp))
        for label, keys, n, per_round in ROWS[opts.rows[0] : opts.rows[1] + 1]:
            for t in opts.threads:
                a, b, (ratio, low, high) = compare(old, keys, n, 1 if opts.eval else per_round,
                                                   t, opts.rounds, opts.eval)
                table.add_row(label if t == opts.threads[0] else "", str(t), f"{a:.1f}",
                              f"{b:.1f}", f"{ratio:.3f}", f"{low:.3f}-{high:.3f}")
    Console(width=120).print(table)
    print("ms: fastest round; new / old: median over rounds of the ratio within a round; "
          "quartiles: its lower and upper quartile.")


if __name__ == "__main__":
    main()
