"""ms per update of the Assignment 2 network (3072-50-10, batch 100) through dl2424's
trainer, beside a bare NumPy loop doing the same arithmetic, the machine's matmul peak,
and (when installed) PyTorch on the CPU. One library is timed at a time."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import matmul_peak_gflops, median_ms, parse_args, torch_or_none  # noqa: E402

OPTS = parse_args(__doc__)  # sets the BLAS threads: before NumPy loads

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dl2424.build import build  # noqa: E402
from dl2424.config import validate  # noqa: E402
from dl2424.data.bundle import DataBundle, DataInfo, Split  # noqa: E402
from dl2424.trainer import Trainer  # noqa: E402

D, M, K, B, N = 3072, 50, 10, 100, 10_000


def synthetic(dtype):
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, N)
    split = Split(rng.standard_normal((N, D)).astype(dtype), y)
    return DataBundle(split, split, None, DataInfo((D,), [str(k) for k in range(K)]))


def dl2424_step(dtype, model=None):
    exp = validate({
        "name": "bench", "seed": 0, "dtype": dtype, "data": "cifar10",
        "model": model or {"type": "mlp", "hidden": [M], "l2": 0.01, "init": "xavier"},
        "optimizer": {"type": "sgd"},
        "schedule": {"type": "cyclic", "n_s": 500}, "train": {"batch_size": B, "cycles": 10}})
    trainer = Trainer(build(exp, None, data=synthetic(dtype)))
    return trainer.train_step


def bare_step(dtype):
    """The same update written as one flat NumPy loop body (the yardstick)."""
    data = synthetic(dtype)
    X, y = data.train.X, data.train.y
    rng = np.random.default_rng(0)
    W1 = (rng.standard_normal((D, M)) / np.sqrt(D)).astype(dtype)
    W2 = (rng.standard_normal((M, K)) / np.sqrt(M)).astype(dtype)
    b1, b2 = np.zeros(M, dtype), np.zeros(K, dtype)
    lam, lr = dtype(0.01), dtype(0.01)
    state = {"t": 0, "perm": rng.permutation(N)}

    def step():
        j = state["t"] % (N // B)
        if j == 0:
            state["perm"] = rng.permutation(N)
        idx = state["perm"][j * B:(j + 1) * B]
        state["t"] += 1
        xb, yb = X[idx], y[idx]
        h = np.maximum(xb @ W1 + b1, 0)
        s = h @ W2 + b2
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(B), yb] -= 1
        g = p / B
        dW2 = h.T @ g + 2 * lam * W2
        db2 = g.sum(axis=0)
        gh = (g @ W2.T) * (h > 0)
        dW1 = xb.T @ gh + 2 * lam * W1
        db1 = gh.sum(axis=0)
        for w, dw in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2)):
            w -= lr * dw

    return step


def torch_step(torch, dtype):
    torch.manual_seed(0)
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    X = torch.randn(N, D, dtype=tdtype)
    y = torch.randint(0, K, (N,))
    net = torch.nn.Sequential(torch.nn.Linear(D, M), torch.nn.ReLU(), torch.nn.Linear(M, K))
    net = net.to(tdtype)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, weight_decay=0.02)
    loss_fn = torch.nn.CrossEntropyLoss()
    state = {"t": 0, "perm": torch.randperm(N)}

    def step():
        j = state["t"] % (N // B)
        if j == 0:
            state["perm"] = torch.randperm(N)
        idx = state["perm"][j * B:(j + 1) * B]
        state["t"] += 1
        opt.zero_grad(set_to_none=True)
        loss_fn(net(X[idx]), y[idx]).backward()
        opt.step()

    return step


def mlp_flops(hidden) -> int:
    """Matmul FLOPs of one update: forward, dW, and dx for every layer but the first."""
    sizes = [D, *hidden, K]
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    return sum(2 * B * a * b * (3 if i else 2) for i, (a, b) in enumerate(pairs))


def deeper_table(peak: float) -> Table:
    nets = {"3-layer [50, 50]": ([50, 50], False), "3-layer [50, 50] + BN": ([50, 50], True),
            "9-layer + BN": ([50, 30, 20, 20, 10, 10, 10, 10], True)}
    t = Table(title=f"Assignment 3 networks, batch {B}, float32: ms per update (median)")
    for col in ("network", "ms / update", "GFLOP/s", "% of matmul peak"):
        t.add_column(col, justify="right")
    for label, (hidden, bn) in nets.items():
        step = dl2424_step("float32", {"type": "mlp", "hidden": hidden, "batchnorm": bn,
                                       "l2": 0.005, "init": "he"})
        ms = median_ms(step, repeats=5, number=100)
        gflops = mlp_flops(hidden) / (ms * 1e-3) / 1e9
        t.add_row(label, f"{ms:.3f}", f"{gflops:.1f}", f"{100 * gflops / peak:.0f}%")
    return t


def main():
    console = Console()
    torch = torch_or_none()
    table = Table(title=f"A2 network {D}-{M}-{K}, batch {B}: ms per update (median), "
                        f"{OPTS.threads} thread(s)")
    for col in ("dtype", "bare NumPy", "dl2424", "dl2424 / bare", "GFLOP/s", "% of peak",
                "PyTorch CPU", "dl2424 / PyTorch"):
        table.add_column(col, justify="right")
    for dtype in (np.float32, np.float64):
        peak = matmul_peak_gflops(dtype)
        # Interleave the two NumPy variants so drift in machine load hits both alike.
        bare, ours = [], []
        fb, fo = bare_step(dtype), dl2424_step(dtype.__name__)
        for _ in range(3):
            bare.append(median_ms(fb, repeats=3, number=100))
            ours.append(median_ms(fo, repeats=3, number=100))
        t_bare, t_ours = min(bare), min(ours)
        gflops = mlp_flops([M]) / (t_ours * 1e-3) / 1e9
        t_torch = ratio_torch = "—"
        if torch is not None:
            torch.set_num_threads(OPTS.threads)
            tt = median_ms(torch_step(torch, dtype), repeats=5, number=100)
            t_torch, ratio_torch = f"{tt:.3f}", f"{t_ours / tt:.2f}×"
        table.add_row(dtype.__name__, f"{t_bare:.3f}", f"{t_ours:.3f}",
                      f"{t_ours / t_bare:.3f}×", f"{gflops:.1f}", f"{100 * gflops / peak:.0f}%",
                      t_torch, ratio_torch)
        console.print(f"{dtype.__name__} matmul peak: {peak:.1f} GFLOP/s")
    console.print(table)
    console.print(deeper_table(matmul_peak_gflops(np.float32)))
    if torch is None:
        console.print("PyTorch not installed: `pip install -e '.[bench]'` adds the comparison.")


if __name__ == "__main__":
    main()
