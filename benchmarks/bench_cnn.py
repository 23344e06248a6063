"""ms per update of image ConvNets (model `cnn`) beside PyTorch CPU, at 1 and 2 threads.

One update = loss, backward and an Adam step (lr 1e-4) on a fixed random CIFAR-size batch,
float32. dl2424 and, when `import torch` works, the same network in PyTorch (Conv2d,
BatchNorm2d, ReLU, MaxPool2d, Linear; NCHW, as a student writes it) are timed in one process,
interleaved round by round (1 thread: dl2424 and torch back to back, then 2 threads; which
library goes first alternates), so that the load of other processes hits all four alike. The
ms columns show the fastest of the rounds (other processes and a drifting shared host only
ever add time, by tens of percent from one second to the next, so the minimum is the
steadiest estimate of each library's own speed). "ratio" is dl2424 / PyTorch at equal
threads, the median over rounds of the ratio within a round (drift slower than a round
cancels out; below 1: dl2424 is faster); "quartiles" are its lower and upper quartile over
the rounds, which say how far to trust it. GFLOP/s counts the products only (convolutions
forward, dW and dx except for the first layer, and the fc layers: BN, pooling and
activations count as zero work), each convolution as the direct product it is (PyTorch's
count); the layers dl2424 runs by Winograd's algorithm (the UvA network's conv 3-6) do 2.25x
fewer multiplications, so there the figure is an equivalent rate. "of peak" relates it to
2048^3 float32 matmuls measured here, as many at once as there are threads.

On a busy machine `--clock cpu --threads 1` is the steadier comparison (this process's CPU
time; at 2 threads CPU time adds up both threads and says nothing about the wall time).

    .venv/bin/python benchmarks/bench_cnn.py [--repeats 7] [--threads 1 2] [--rows 0 4]
                                             [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# dl2424's own default is one BLAS thread; the thread count is set at run time below.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    matmul_peak_gflops,
    paired_ratios,
    seconds_per_call,
    timer,
    torch_or_none,
)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import dl2424.models.cnn  # noqa: E402,F401  (registers the model)
import dl2424.optim  # noqa: E402,F401  (registers the optimizers)
from dl2424.data.bundle import DataInfo  # noqa: E402
from dl2424.nn import parallel  # noqa: E402
from dl2424.registry import MODELS, OPTIMIZERS  # noqa: E402

IMAGE, K, LR = (3, 32, 32), 10, 1e-4
SMALL = [16, "M", 32, "M", 64, "M"]
POOL2 = {"kernel": 2, "stride": 2, "padding": 0}
UVA = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
# (label, model keys, batch size, updates per timed round): the rows of issue 17
ROWS = [
    ("small [16,M,32,M,64,M], 2x2 pool", {"layers": SMALL, "pool": POOL2}, 100, 4),
    ("small, 2x2 pool, BN", {"layers": SMALL, "pool": POOL2, "batchnorm": True}, 100, 4),
    ("small, 3x3/2 pool, BN", {"layers": SMALL, "batchnorm": True}, 100, 4),
    ("wide [32,M,64,M,128,M], BN",
     {"layers": [32, "M", 64, "M", 128, "M"], "pool": POOL2, "batchnorm": True}, 100, 2),
    ("UvA VGG, BN", {"layers": UVA, "batchnorm": True}, 32, 1),
]


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds; the fastest is shown")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts to compare (default 1 2)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or this process's CPU time (steadier at 1 thread)")
    ap.add_argument("--rows", type=int, nargs=2, default=[0, len(ROWS) - 1],
                    metavar=("FIRST", "LAST"), help="which rows of the table (0-based)")
    return ap.parse_args()


def build(keys, n):
    info = DataInfo((int(np.prod(IMAGE)),), [str(k) for k in range(K)],
                    {"image_shape": list(IMAGE)})
    p = MODELS["cnn"].params.model_validate(keys)
    model = MODELS["cnn"].factory(p, info, np.dtype(np.float32), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, info.input_shape[0]), dtype=np.float32)
    y = rng.integers(0, K, n)
    return model, X, y


def matmul_flops(model, n):
    """FLOPs of the update's products as direct convolutions: forward, dW, and dx except
    for the first layer."""
    c, h, w = model.image_shape
    k, s, pad = model.pool
    total, first = 0, True
    for kind, l in model.blocks:
        if kind == "pool":
            h, w = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
            continue
        fwd = 2 * n * h * w * model.params[f"F{l}"].size  # 3x3 'same' convs keep h, w
        total += fwd * (2 if first else 3)
        first = False
    for j in range(1, model.n_fc + 1):
        total += 2 * n * model.params[f"W{j}"].size * (2 if first else 3)
        first = False
    return total


def dl2424_step(model, X, y):
    opt = OPTIMIZERS["adam"].factory(OPTIMIZERS["adam"].params())
    rng = np.random.default_rng(2)

    def step():
        _, _, grads = model.loss(X, y, train=True, rng=rng)
        opt.step(model.params, grads, LR)

    return step


def torch_step(torch, keys, X, y):
    """The same network in PyTorch: 3x3 'same' convs (no bias with BN), BN, ReLU, pools."""
    p = MODELS["cnn"].params.model_validate(keys)
    nn, mods, c, side = torch.nn, [], IMAGE[0], IMAGE[1]
    for item in p.layers:
        if item == "M":
            mods.append(nn.MaxPool2d(p.pool.kernel, p.pool.stride, p.pool.padding))
            side = (side + 2 * p.pool.padding - p.pool.kernel) // p.pool.stride + 1
            continue
        mods.append(nn.Conv2d(c, item, 3, padding=1, bias=not p.batchnorm))
        if p.batchnorm:
            mods.append(nn.BatchNorm2d(item))
        mods.append(nn.ReLU())
        c = item
    net = nn.Sequential(*mods, nn.Flatten(), nn.Linear(c * side * side, K))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    Xt = torch.from_numpy(X.reshape(-1, *IMAGE).copy())
    yt = torch.from_numpy(y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(Xt), yt).backward()
        opt.step()

    return step


def set_threads(torch, n):
    parallel.set_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def time_row(label, keys, n, number, opts, torch):
    """ms per update of each (library, threads) in each round. A round times every thread
    count in turn, the two libraries back to back, the one that goes first alternating."""
    model, X, y = build(keys, n)
    steps = {("dl2424", t): dl2424_step(model, X, y) for t in opts.threads}
    if torch is not None:
        steps.update({("torch", t): torch_step(torch, keys, X, y) for t in opts.threads})
    libs = ["dl2424", "torch"] if torch is not None else ["dl2424"]
    times = {key: [] for key in steps}
    for round_ in range(opts.repeats + 1):  # round 0 warms caches, allocators and pools
        for t in opts.threads:
            set_threads(torch, t)
            for lib in libs if round_ % 2 else libs[::-1]:
                ms = 1e3 * seconds_per_call(steps[lib, t], 1, number,
                                            1 if round_ == 0 else 0, timer(opts))[0]
                if round_:
                    times[lib, t].append(ms)
    return times, matmul_flops(model, n)


def main():
    opts = parse()
    torch = torch_or_none()
    peaks = {}
    for t in opts.threads:
        set_threads(torch, t)
        peaks[t] = matmul_peak_gflops(np.float32, threads=t)
    table = Table(title="ms per cnn update (float32, Adam, fixed batch), fastest of "
                        f"{opts.repeats} interleaved rounds, {opts.clock} clock")
    for col in ("network", "batch", "threads", "dl2424 ms", "PyTorch ms", "ratio",
                "quartiles", "GFLOP/s", "of peak"):
        table.add_column(col, justify="left" if col == "network" else "right")
    first, last = opts.rows
    t0 = time.perf_counter()
    for label, keys, n, number in ROWS[first : last + 1]:
        times, flops = time_row(label, keys, n, number, opts, torch)
        for t in opts.threads:
            ours, theirs = times["dl2424", t], times.get(("torch", t))
            ratio, low, high = ("-",) * 3 if theirs is None else (
                f"{r:.2f}" for r in paired_ratios(ours, theirs))
            rate = flops / min(ours) / 1e6
            table.add_row(label if t == opts.threads[0] else "", str(n), str(t),
                          f"{min(ours):.1f}", "-" if theirs is None else f"{min(theirs):.1f}",
                          ratio, "-" if theirs is None else f"{low}-{high}",
                          f"{rate:.1f}", f"{rate / peaks[t]:.0%}")
    console = Console(width=120)
    console.print(table)
    torch_note = (f"torch {torch.__version__}" if torch is not None
                  else "torch not installed: PyTorch column empty (pip install '.[bench]')")
    peak_note = ", ".join(f"{peaks[t]:.0f} GFLOP/s at {t} thread(s)" for t in opts.threads)
    console.print(f"float32 matmul peak {peak_note}; numpy {np.__version__}, {torch_note}, "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, "
                  f"{time.perf_counter() - t0:.0f} s. Other processes inflate every number: "
                  "compare within a row.")


if __name__ == "__main__":
    main()
