"""ms per update of image ConvNets (model `cnn`) on CIFAR-size input in float32.

One update = loss, backward and an Adam step on a fixed random batch. The table shows the
median (and best) over repeats, the matmul GFLOP/s the median achieves (convolution and fc
products only: BN, pooling, activations and im2col count as zero work) and that as a fraction
of this machine's float32 matmul peak, measured here with the same BLAS thread count.

    .venv/bin/python benchmarks/bench_cnn.py [--threads 1] [--repeats 5] [--clock wall]
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import matmul_peak_gflops, parse_args, seconds_per_call, timer  # noqa: E402

OPTS = parse_args(__doc__)  # sets the BLAS threads: before NumPy loads

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import dl2424.models.cnn  # noqa: E402,F401  (registers the model)
import dl2424.optim  # noqa: E402,F401  (registers the optimizers)
from dl2424.data.bundle import DataInfo  # noqa: E402
from dl2424.registry import MODELS, OPTIMIZERS  # noqa: E402

IMAGE, K = (3, 32, 32), 10
SMALL = [16, "M", 32, "M", 64, "M"]
POOL2 = {"kernel": 2, "stride": 2, "padding": 0}
UVA = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
# (label, model keys, batch sizes, updates per timed repeat)
CONFIGS = [
    ("small, 2x2 pool", {"layers": SMALL, "pool": POOL2}, (64, 100), 10),
    ("small, 2x2 pool, BN", {"layers": SMALL, "pool": POOL2, "batchnorm": True}, (64, 100), 10),
    ("small, 3x3/2 pool, BN", {"layers": SMALL, "batchnorm": True}, (64, 100), 10),
    ("wide [32,M,64,M,128,M], 2x2, BN",
     {"layers": [32, "M", 64, "M", 128, "M"], "pool": POOL2, "batchnorm": True}, (64, 100), 4),
    ("UvA VGG, BN", {"layers": UVA, "batchnorm": True}, (32,), 1),
]


def matmul_flops(model, n):
    """FLOPs of the update's products: forward, dW, and dx except for the first layer."""
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


def update_fn(keys, n):
    info = DataInfo((int(np.prod(IMAGE)),), [str(k) for k in range(K)],
                    {"image_shape": list(IMAGE)})
    p = MODELS["cnn"].params.model_validate(keys)
    model = MODELS["cnn"].factory(p, info, np.dtype(np.float32), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, info.input_shape[0]), dtype=np.float32)
    y = rng.integers(0, K, n)
    opt = OPTIMIZERS["adam"].factory(OPTIMIZERS["adam"].params())

    def step():
        _, _, grads = model.loss(X, y, train=True, rng=rng)
        opt.step(model.params, grads, 1e-4)

    return step, matmul_flops(model, n), model.n_params()


def time_ms(fn, repeats, number):
    """(median, best) over `repeats` of the mean time of `number` calls, in milliseconds."""
    times = [1e3 * t for t in seconds_per_call(fn, repeats, number, 2, timer(OPTS))]
    return statistics.median(times), min(times)


def main():
    peak = matmul_peak_gflops(np.float32)
    table = Table(title=f"cnn update, float32, {OPTS.clock} clock, {OPTS.threads} BLAS "
                        f"thread(s); float32 matmul peak {peak:.0f} GFLOP/s")
    for col in ("config", "params", "batch", "ms/update", "best ms", "GFLOP/update",
                "GFLOP/s", "of peak"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for label, keys, batches, number in CONFIGS:
        for n in batches:
            step, flops, n_params = update_fn(keys, n)
            ms, best = time_ms(step, OPTS.repeats, number)
            rate = flops / ms / 1e6
            table.add_row(label, f"{n_params:,}", str(n), f"{ms:.1f}", f"{best:.1f}",
                          f"{flops / 1e9:.2f}", f"{rate:.1f}", f"{rate / peak:.0%}")
    console = Console(width=120)
    console.print(table)
    # other processes inflate every number above; --clock cpu is steadier then
    console.print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average "
                  f"{os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
