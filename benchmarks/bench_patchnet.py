"""ms per update of the patchify ConvNet (model `patchnet`) against the same network in PyTorch.

One update = forward, cross-entropy + L2 cost, backward and a plain SGD step on a fixed
random batch of 100 CIFAR-size images, float32, for every architecture of the 2026
Assignment 3 sweep (nh = 50) and its architecture 5. PyTorch runs conv2d with stride f and
autograd on the CPU, with the same thread count as BLAS. The two are timed in alternating
rounds in one process, so a busy machine slows both alike; the ratio is what to read.

    .venv/bin/python benchmarks/bench_patchnet.py [--threads 1] [--repeats 5] [--clock wall]
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import parse_args, seconds_per_call, timer, torch_or_none  # noqa: E402

OPTS = parse_args(__doc__)  # sets the BLAS threads: before NumPy loads

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import dl2424.models.patchnet  # noqa: E402,F401  (registers the model)
import dl2424.optim  # noqa: E402,F401  (registers the optimizers)
from dl2424.data.bundle import DataInfo  # noqa: E402
from dl2424.registry import MODELS, OPTIMIZERS  # noqa: E402

IMAGE, K, BATCH, L2, LR = (3, 32, 32), 10, 100, 0.003, 0.01
# (label, f, nf, nh, updates per timed round)
ARCHS = [("arch 1", 2, 3, 50, 20), ("arch 2 (reference)", 4, 10, 50, 40),
         ("arch 3", 8, 40, 50, 40), ("arch 4", 16, 160, 50, 40), ("arch 5", 4, 40, 300, 20)]


def batch():
    rng = np.random.default_rng(1)
    return (rng.standard_normal((BATCH, int(np.prod(IMAGE))), dtype=np.float32),
            rng.integers(0, K, BATCH))


def numpy_update(f, nf, nh):
    info = DataInfo((int(np.prod(IMAGE)),), [str(k) for k in range(K)],
                    {"image_shape": list(IMAGE)})
    p = MODELS["patchnet"].params.model_validate({"f": f, "nf": nf, "nh": nh, "l2": L2})
    model = MODELS["patchnet"].factory(p, info, np.dtype(np.float32), np.random.default_rng(0))
    opt = OPTIMIZERS["sgd"].factory(OPTIMIZERS["sgd"].params())
    X, y = batch()

    def step():
        _, _, grads = model.loss(X, y, with_penalty=True)
        opt.step(model.params, grads, LR)

    return step, model


def torch_update(torch, model):
    """The same network and starting parameters, as torch tensors (NCHW, conv2d stride f)."""
    P = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    w = torch.tensor(model.params["F"].transpose(3, 2, 0, 1).copy(), requires_grad=True)
    f = w.shape[-1]
    X, y = batch()
    x, t = torch.tensor(X).reshape(BATCH, *IMAGE), torch.tensor(y)
    params = [w, P["W1"], P["b1"], P["W2"], P["b2"]]
    fn = torch.nn.functional

    def step():
        h = torch.relu(fn.conv2d(x, w, stride=f)).permute(0, 2, 3, 1).reshape(BATCH, -1)
        s = torch.relu(h @ P["W1"] + P["b1"]) @ P["W2"] + P["b2"]
        cost = fn.cross_entropy(s, t) + L2 * ((w ** 2).sum() + (P["W1"] ** 2).sum()
                                               + (P["W2"] ** 2).sum())
        for q in params:
            q.grad = None
        cost.backward()
        with torch.no_grad():
            for q in params:
                q -= LR * q.grad

    return step


def interleaved_ms(fns, number):
    """Median ms per call of each fn, timing one round of each in turn, OPTS.repeats times."""
    clock = timer(OPTS)
    times = [[] for _ in fns]
    for fn in fns:
        seconds_per_call(fn, 1, 1, warmup=3, clock=clock)
    for _ in range(OPTS.repeats):
        for i, fn in enumerate(fns):
            times[i] += seconds_per_call(fn, 1, number, warmup=0, clock=clock)
    return [1e3 * statistics.median(t) for t in times]


def main():
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(OPTS.threads)
    table = Table(title=f"patchnet update, batch {BATCH}, float32, {OPTS.clock} clock, "
                        f"{OPTS.threads} thread(s) for BLAS and torch")
    for col in ("architecture", "f", "nf", "nh", "params", "dl2424 ms", "torch ms",
                "torch / dl2424"):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for label, f, nf, nh, number in ARCHS:
        step, model = numpy_update(f, nf, nh)
        fns = [step] if torch is None else [step, torch_update(torch, model)]
        ms = interleaved_ms(fns, number)
        theirs = f"{ms[1]:.2f}" if torch else "no torch"
        ratio = f"{ms[1] / ms[0]:.2f}x" if torch else "-"
        table.add_row(label, str(f), str(nf), str(nh), f"{model.n_params():,}",
                      f"{ms[0]:.2f}", theirs, ratio)
    console = Console(width=120)
    console.print(table)
    versions = f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else "")
    console.print(f"{versions}, {os.cpu_count()} CPUs, load average "
                  f"{os.getloadavg()[0]:.1f} at the end (other processes inflate both columns)")


if __name__ == "__main__":
    main()
