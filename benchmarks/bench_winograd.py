"""ms per forward + backward of one 3x3 convolution: Winograd's F(2x2, 3x3) beside im2col.

The layers of bench_cnn's networks (batch 100 for the CIFAR nets, 32 for the UvA VGG), float32,
on one thread. Each way does what the image ConvNet does per update for a layer after the
first: Winograd = filter transform, forward, output gradient, filter products and filter
gradient, input gradient; im2col = forward (with the im2col matrix), dW from that matrix,
dx by the transposed convolution. Buffers are kept across calls, as the model keeps them.
Rounds alternate which way goes first; "ratio" is Winograd / im2col, the median over rounds
of the ratio within a round, with its quartiles. "pays" is what `winograd.pays` decides for
the layer (the image ConvNet takes Winograd where it says yes): the ratios are what it was
set from.

    .venv/bin/python benchmarks/bench_winograd.py [--repeats 9] [--clock wall|cpu]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import paired_ratios, parse_args, seconds_per_call, timer  # noqa: E402

OPTS = parse_args(__doc__)  # sets the BLAS thread count before NumPy loads

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dl2424.nn import conv2d as cv  # noqa: E402
from dl2424.nn import winograd as wg  # noqa: E402

# (network, n, H = W, C, F): every conv after the first of bench_cnn's networks, once each,
# then 128 channels on larger maps than the UvA network has
LAYERS = [
    ("small", 100, 16, 16, 32), ("small", 100, 8, 32, 64),
    ("wide", 100, 16, 32, 64), ("wide", 100, 8, 64, 128),
    ("UvA", 32, 16, 64, 128), ("UvA", 32, 8, 128, 256), ("UvA", 32, 8, 256, 256),
    ("UvA", 32, 4, 256, 512), ("UvA", 32, 4, 512, 512), ("UvA", 32, 2, 512, 512),
    ("128-ch", 32, 16, 128, 256), ("128-ch", 32, 32, 128, 128),
]


def layer(n, side, C, F, seed=0):
    """Random input, filters (C innermost) and upstream gradient, float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, side, side, C), dtype=np.float32)
    W = cv.channels_last_filters(rng.standard_normal((F, C, 3, 3), dtype=np.float32))
    return x, W, rng.standard_normal((n, side, side, F), dtype=np.float32)


def im2col_step(x, W, dout):
    n, H, Wd, C = x.shape
    F = W.shape[0]
    xp = np.zeros((n, H + 2, Wd + 2, C), x.dtype)
    cols = np.empty((n, H, Wd, 3, 3, C), x.dtype)
    out, dx, dW = np.empty_like(dout), np.empty_like(x), np.empty_like(W)
    dpad, work = np.zeros((n, H + 2, Wd + 2, F), x.dtype), {}

    def step():
        cv.conv2d_nhwc_forward(x, W, None, 1, 1, xp, cols, out)
        cv.filter_rows_grad(dout.reshape(-1, F), cols, out=cv.filter_rows(dW))
        cv.conv2d_nhwc_input_grad(dout, W, x.shape, 1, 1, dx, dpad, work)

    return step


def winograd_step(x, W, dout):
    n, H, Wd, C = x.shape
    F = W.shape[0]
    xp = np.zeros((n, H + 2, Wd + 2, C), x.dtype)
    V = np.empty(wg.tile_shape(x.shape, C), x.dtype)
    dM = np.empty(wg.tile_shape(x.shape, F), x.dtype)
    U, dU = np.empty((F, 16, C), x.dtype), np.empty((F, 16, C), x.dtype)
    out, dx, dW, work = np.empty_like(dout), np.empty_like(x), np.empty_like(W), {}

    def step():
        wg.winograd_forward(x, W, None, wg.filter_transform(W, U), xp, V, out, work)
        wg.output_gradient(dout, dM, work)
        wg.filter_gradient(wg.filter_products(dM, V, dU), dW)
        wg.input_gradient(dM, U, x.shape, dx, work)

    return step


def main():
    clock = timer(OPTS)
    table = Table(title="3x3 conv, forward + backward, 1 thread: Winograd vs im2col")
    for col in ("network", "n", "map", "C->F", "im2col ms", "Winograd ms", "ratio",
                "quartiles", "pays"):
        table.add_column(col, justify="left" if col == "network" else "right")
    for net, n, side, C, F in LAYERS:
        x, W, dout = layer(n, side, C, F)
        steps = {"im2col": im2col_step(x, W, dout), "winograd": winograd_step(x, W, dout)}
        times = {k: [] for k in steps}
        for r in range(OPTS.repeats):
            for k in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
                times[k] += seconds_per_call(steps[k], 1, 3, warmup=1 if r == 0 else 0,
                                             clock=clock)
        ratio, low, high = paired_ratios(times["winograd"], times["im2col"])
        table.add_row(net, str(n), f"{side}x{side}", f"{C}->{F}",
                      f"{1e3 * min(times['im2col']):.2f}",
                      f"{1e3 * min(times['winograd']):.2f}", f"{ratio:.2f}",
                      f"{low:.2f}-{high:.2f}",
                      "yes" if wg.pays(x.shape, W.shape) else "no")
    Console().print(table)
    print("ms: fastest round (3 calls each); ratio: Winograd / im2col, median over rounds of "
          "the ratio within a round; pays: winograd.pays for the layer.")


if __name__ == "__main__":
    main()
