"""Seconds per 100 updates of the surname ConvNet (DD2424 Assignment 3, report item (v)).

Compares (a) the hand-out's straightforward implementation (MF matrices for the forward
pass, one MX matrix per example and layer for the filter gradients), (b) dl2424's fast
path (sparse one-hot im2col at layer 1, im2col + one matmul per deeper layer), and, when
`import torch` works, (c) the same network in PyTorch on the CPU (Conv1d over the one-hot
input). Each update: a random mini-batch of 100 names (n_len 19, d 28, K 18), forward,
backward, momentum SGD (eta .001, rho .9). Each library is timed on its own, the median
of several repeats. Usage:

    .venv/bin/python benchmarks/bench_charcnn.py [--threads 1] [--repeats 5] [--clock wall]
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import parse_args, seconds_per_call, timer  # noqa: E402

OPTS = parse_args(__doc__)  # sets the BLAS threads: before NumPy loads

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dl2424.data.bundle import DataInfo  # noqa: E402
from dl2424.models.charcnn import CharCNNParams, charcnn  # noqa: E402
from dl2424.nn import charconv as cc  # noqa: E402
from dl2424.nn import charconv_ref as ref  # noqa: E402

N_LEN, D, K, BATCH, N_DATA = 19, 28, 18, 100, 5000
ETA, RHO = 0.001, 0.9
NETS = {"n1=n2=20, k1=5, k2=3": (20, 20, 5, 3), "n1=n2=50, k1=7, k2=3": (50, 50, 7, 3)}
# (a) is slow: it is timed over this many updates per repeat and scaled to 100
STRAIGHTFORWARD_STEPS = {"n1=n2=20, k1=5, k2=3": 5, "n1=n2=50, k1=7, k2=3": 2}
FAST_STEPS = 200


def random_names(rng):
    """Integer-coded names with random lengths 2..19, right-padded with index D."""
    idx = rng.integers(0, D, (N_DATA, N_LEN))
    lengths = rng.integers(2, N_LEN + 1, N_DATA)
    idx[np.arange(N_LEN) >= lengths[:, None]] = D
    return idx, rng.integers(0, K, N_DATA)


def make_model(net, dtype, seed=0):
    n1, n2, k1, k2 = net
    p = CharCNNParams(layers=[dict(filters=n1, width=k1), dict(filters=n2, width=k2)])
    info = DataInfo((N_LEN,), [str(i) for i in range(K)], {"vocab": D})
    return charcnn(p, info, dtype, np.random.default_rng(seed))


def momentum_update(params, grads, velocity):
    for k, w in params.items():
        v = velocity[k]
        v *= RHO
        v -= ETA * grads[k]
        w += v


def fast_step(net, dtype, idx, y, rng):
    model = make_model(net, dtype)
    velocity = {k: np.zeros_like(w) for k, w in model.params.items()}

    def step():
        b = rng.integers(0, N_DATA, BATCH)
        _, _, grads = model.loss(idx[b], y[b])
        momentum_update(model.params, grads, velocity)

    return step


def straightforward_step(net, dtype, idx, y, rng):
    model = make_model(net, dtype)
    params = model.to_handout(model.params)
    params = {k: np.ascontiguousarray(v) for k, v in params.items()}
    velocity = {k: np.zeros_like(w) for k, w in params.items()}
    # the hand-out keeps every name as a column vec(X) of its one-hot matrix
    onehot = (idx[:, None, :] == np.arange(D)[None, :, None]).astype(dtype)
    X_all = onehot.transpose(1, 2, 0).reshape(D * N_LEN, N_DATA, order="F")
    Y_all = np.eye(K, dtype=dtype)[:, y]
    specs = [cc.ConvSpec(), cc.ConvSpec()]

    def step():
        b = rng.integers(0, N_DATA, BATCH)
        P, cache = ref.reference_forward(X_all[:, b], [params["F1"], params["F2"]],
                                        params["W"], specs)
        grads = ref.reference_backward(Y_all[:, b], P, cache)
        momentum_update(params, grads, velocity)

    return step


def torch_step(net, dtype, idx, y, rng):
    import torch

    n1, n2, k1, k2 = net
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    onehot = torch.from_numpy(idx[:, None, :] == np.arange(D)[None, :, None])
    X_all, y_all = onehot.to(tdtype), torch.from_numpy(y)
    length = N_LEN - k1 + 1 - k2 + 1
    model = torch.nn.Sequential(
        torch.nn.Conv1d(D, n1, k1, bias=False), torch.nn.ReLU(),
        torch.nn.Conv1d(n1, n2, k2, bias=False), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(n2 * length, K, bias=False)).to(tdtype)
    opt = torch.optim.SGD(model.parameters(), lr=ETA, momentum=RHO)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        b = torch.from_numpy(rng.integers(0, N_DATA, BATCH))
        opt.zero_grad(set_to_none=True)
        loss_fn(model(X_all[b]), y_all[b]).backward()
        opt.step()

    return step


def seconds_per_100(step, n_steps, repeats):
    """Median over repeats of the time of n_steps updates, scaled to 100 updates."""
    times = seconds_per_call(step, repeats, n_steps, max(1, n_steps // 5), timer(OPTS))
    return float(np.median(times)) * 100


def main():
    rng = np.random.default_rng(0)
    idx, y = random_names(rng)
    results = {}  # (net, dtype name, implementation) -> seconds per 100 updates
    dtypes = {"float32": np.float32, "float64": np.float64}
    plan = [("(a) straightforward MF/MX", straightforward_step, STRAIGHTFORWARD_STEPS),
            ("(b) fast path", fast_step, None)]
    try:
        import torch
        torch.set_num_threads(OPTS.threads)
        plan.append(("(c) PyTorch CPU", torch_step, None))
        torch_note = f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    except ImportError:
        torch_note = "torch not installed: (c) skipped (pip install '.[bench]')"
    for impl, make_step, steps in plan:  # one library at a time, never interleaved
        for net_name, net in NETS.items():
            for dname, dtype in dtypes.items():
                n_steps = steps[net_name] if steps else FAST_STEPS
                repeats = min(OPTS.repeats, 3) if steps else OPTS.repeats
                step = make_step(net, dtype, idx, y, np.random.default_rng(1))
                results[net_name, dname, impl] = seconds_per_100(step, n_steps, repeats)
    show(results, [impl for impl, _, _ in plan], torch_note)


def show(results, impls, torch_note):
    table = Table(title=f"seconds ({OPTS.clock} clock) per 100 updates (batch 100, momentum "
                        "SGD), median of repeats")
    for col in ("network", "dtype", *impls, "(a)/(b)"):
        table.add_column(col, justify="left" if col in ("network", "dtype") else "right")
    if len(impls) == 3:
        table.add_column("(c)/(b)", justify="right")
    for net_name in NETS:
        for dname in ("float32", "float64"):
            t = [results[net_name, dname, impl] for impl in impls]
            ratios = [f"{t[0] / t[1]:.0f}x"] + ([f"{t[2] / t[1]:.1f}x"] if len(t) == 3 else [])
            table.add_row(net_name, dname, *[f"{s:.4f}" for s in t], *ratios)
    console = Console(width=120)
    console.print(table)
    small = results["n1=n2=20, k1=5, k2=3", "float32", "(b) fast path"]
    a_steps = " and ".join(str(s) for s in STRAIGHTFORWARD_STEPS.values())
    console.print(f"(a) timed over {a_steps} updates per repeat (small, large net) and scaled "
                  f"to 100; (b), (c) over {FAST_STEPS}. Projected 20,000-update run of (b), "
                  f"20/20/5/3 float32: {small * 200:.1f} s.")
    console.print(f"numpy {np.__version__}, {OPTS.threads} BLAS thread(s), {torch_note}, "
                  f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
                  f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
