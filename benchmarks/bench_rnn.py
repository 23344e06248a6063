"""ms per update of the A4 character RNN (float64, m = 100, seq 25, K = 80) through dl2424's
text trainer (gather, all-steps output product, AdaGrad, clipping to [-5, 5]), beside the
same update in PyTorch on the CPU (nn.RNN / nn.LSTM + nn.Linear + Adagrad + clamp), timed
alternately in this one process; LSTM and batched (B = 16) rows too, and the hand-out's
100,000-update run with 200 characters synthesised every 500 updates."""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import parse_args, seconds_per_call, timer, torch_or_none  # noqa: E402

OPTS = parse_args(__doc__)  # sets the BLAS threads: before NumPy loads

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dl2424.build import build  # noqa: E402
from dl2424.config import validate  # noqa: E402

K, M, T, N_CHARS = 80, 100, 25, 200_000


def book(folder: Path) -> Path:
    """A random text of K distinct characters (the goblet book has 79-80)."""
    chars = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                          " .,;:!?'\"-()[]{}\n&*+/=<>@#$%"))[:K]
    text = "".join(np.random.default_rng(0).choice(chars, N_CHARS))
    path = folder / "book.txt"
    path.write_text(text, encoding="utf-8")
    return path


def trainer(path: Path, cell: str, B: int, steps: int = 100_000, synth: int | None = None):
    exp = validate({
        "name": "bench", "seed": 0, "dtype": "float64",
        "data": {"type": "text", "path": str(path), "seq_length": T},
        "model": {"type": "rnn", "cell": cell, "hidden": M},
        "optimizer": {"type": "adagrad", "lr": 0.1},
        "train": {"batch_size": B, "steps": steps, "clip": 5, "eval_every": 100,
                  "synth_every": synth, "synth_length": 200}})
    setup = build(exp, path.parent)
    return setup.trainer(setup)


def torch_step(torch, cell: str, B: int):
    """The same update in PyTorch: one-hot input, nn.RNN/nn.LSTM + nn.Linear, summed
    cross-entropy, Adagrad (lr .1, eps 1e-8), every gradient clamped to [-5, 5]."""
    torch.manual_seed(0)
    rnn = (torch.nn.RNN if cell == "rnn" else torch.nn.LSTM)(K, M, batch_first=True,
                                                             dtype=torch.float64)
    out = torch.nn.Linear(M, K, dtype=torch.float64)
    params = [*rnn.parameters(), *out.parameters()]
    opt = torch.optim.Adagrad(params, lr=0.1, eps=1e-8)
    seq = torch.randint(0, K, (B, 100 * T + 1))
    eye = torch.eye(K, dtype=torch.float64)
    z = torch.zeros(1, B, M, dtype=torch.float64)
    state = {"e": 0, "h": z if cell == "rnn" else (z, z.clone())}

    def step():
        e = state["e"]
        x, y = eye[seq[:, e:e + T]], seq[:, e + 1:e + T + 1]
        H, h = rnn(x, state["h"])
        loss = torch.nn.functional.cross_entropy(out(H).reshape(-1, K), y.reshape(-1),
                                                 reduction="sum") / B
        opt.zero_grad()
        loss.backward()
        for p in params:
            p.grad.clamp_(-5, 5)
        opt.step()
        state["h"] = h.detach() if cell == "rnn" else tuple(a.detach() for a in h)
        state["e"] = (e + T) % (99 * T)

    return step


def side_by_side(fns: dict, number: int, repeats: int, clock) -> dict[str, float]:
    """Median ms per call of each fn, measured alternately round by round."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        seconds_per_call(fn, 1, 1, warmup=20, clock=clock)
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k] += seconds_per_call(fn, 1, number, warmup=0, clock=clock)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def main():
    console = Console()
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(OPTS.threads)
    clock = timer(OPTS)
    table = Table(title=f"A4 RNN update, float64, m = {M}, seq {T}, K = {K}, "
                        f"{OPTS.threads} thread(s), {OPTS.clock} clock, median of "
                        f"{OPTS.repeats}")
    for col in ("cell", "batch", "dl2424 ms/update", "PyTorch ms/update", "PyTorch / dl2424"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        path = book(Path(tmp))
        for cell, B in (("rnn", 1), ("lstm", 1), ("rnn", 16), ("lstm", 16)):
            fns = {"dl2424": trainer(path, cell, B).train_step}
            if torch is not None:
                fns["torch"] = torch_step(torch, cell, B)
            ms = side_by_side(fns, 200 if B == 1 else 50, OPTS.repeats, clock)
            t = ms.get("torch")
            table.add_row(cell, str(B), f"{ms['dl2424']:.3f}",
                          f"{t:.3f}" if t else "(no torch)",
                          f"{t / ms['dl2424']:.1f}x" if t else "")
        console.print(table)
        run = trainer(path, "rnn", 1, steps=10_000, synth=500)
        t0 = clock()
        run.fit()
        s = clock() - t0
        console.print(f"hand-out run with synthesis (200 characters every 500 updates, smooth "
                      f"loss every 100): 10,000 updates in {s:.1f} s, so 100,000 in about "
                      f"{10 * s:.0f} s")


if __name__ == "__main__":
    main()
