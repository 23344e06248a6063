"""Check the patchify ConvNet against the course's debug_conv_info.npz (Assignment 3, 2026).

The hand-out's keys, in its layout (columns are images, n = 5, f = 4, nf = 2 in the course
file; any n, f dividing 32 and nf are accepted):

| key | shape | what |
|---|---|---|
| X | 3072 x n | images, CIFAR order (red, green, blue planes, row-major 32 x 32) |
| Fs | f x f x 3 x nf | the filters |
| conv_outputs | 32/f x 32/f x nf x n | X * F_k at every patch (row, column) |
| conv_flat | n_p nf x n | ReLU of the outputs flattened patch-major (row l nf + k) |
| W1, b1, W2, b2 | nh x n_p nf, nh x 1, K x nh, K x 1 | the fully connected layers |
| X1, P | nh x n, K x n | hidden ReLU output and softmax probabilities |
| Y | K x n | one-hot (or smoothed) targets |
| grad_Fs_flat, grad_W1, grad_b1, grad_W2, grad_b2 | 3f^2 x nf, as W1, ... | gradients (*) |

(*) of the mean cross-entropy, without the L2 term; grad_Fs_flat is Fs.reshape(3f^2, nf).

X, Fs and conv_outputs are required; conv_flat is checked when present; X1 and P when the
four layer parameters are there; the gradients when Y is there too. Every value is computed
by dl2424's own code (the patchify layer and the `patchnet` model), not re-derived here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .convcheck import require
from .data.bundle import DataInfo
from .errors import UserError
from .models.patchnet import PatchNet, PatchNetParams
from .nn import patchify as pf
from .nn.losses import softmax

SIDE, CHANNELS = 32, 3
REQUIRED = ("X", "Fs", "conv_outputs")
LAYERS = ("W1", "b1", "W2", "b2")
GRADS = {"grad_Fs_flat": "F", "grad_W1": "W1", "grad_b1": "b1", "grad_W2": "W2",
         "grad_b2": "b2"}


@dataclass(frozen=True)
class PatchCheck:
    """Max absolute differences of each computed array from the file's."""

    path: Path
    n: int
    f: int
    nf: int
    diffs: dict = field(default_factory=dict)  # file key -> max |difference|

    def describe(self) -> str:
        return f"patchify: n={self.n}, f={self.f}, nf={self.nf}"

    def rows(self):
        return [(_WHAT.get(k, k), k, d) for k, d in self.diffs.items()]

    def ok(self, tol: float = 1e-10) -> bool:
        return all(d <= tol for d in self.diffs.values())


_WHAT = {"conv_outputs": "MX · F_all", "conv_flat": "ReLU, flatten", "X1": "ReLU(W1 h + b1)",
         "P": "softmax(W2 x1 + b2)", **{k: f"∇{v}" for k, v in GRADS.items()}}


def _load(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: no such file; pass the course's debug_conv_info.npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # numpy raises several types for a damaged or foreign file
        raise UserError(f"{path}: not a readable NumPy .npz file ({e})") from None
    require(path, data, REQUIRED, "key", "a debug_conv_info.npz")
    for k, a in data.items():
        if a.dtype.kind not in "biuf" or a.size == 0:
            raise UserError(f"{path}: key {k} is not a numeric array")
    return {k: a.astype(np.float64) for k, a in data.items()}


def _expect(path, key, ok, what):
    if not ok:
        raise UserError(f"{path}: key {key} {what}")


def _max_diff(a, b) -> float:
    return float(np.abs(a - b).max())


def _model(a: dict, f: int, nf: int) -> PatchNet:
    """A patchnet holding the file's parameters (transposed into batch-row layout)."""
    K, nh = a["W2"].shape
    info = DataInfo((CHANNELS * SIDE * SIDE,), [str(k) for k in range(K)],
                    {"image_shape": [CHANNELS, SIDE, SIDE]})
    model = PatchNet(PatchNetParams(f=f, nf=nf, nh=nh), info, np.float64,
                     np.random.default_rng(0))
    model.params.update(F=a["Fs"], W1=a["W1"].T.copy(), b1=a["b1"].ravel(),
                        W2=a["W2"].T.copy(), b2=a["b2"].ravel())
    return model


def _shapes_fit(path, a, n, f, nf):
    n_p = (SIDE // f) ** 2
    _expect(path, "conv_outputs", a["conv_outputs"].shape == (SIDE // f, SIDE // f, nf, n),
            f"should be {SIDE // f} x {SIDE // f} x {nf} x {n}, got {a['conv_outputs'].shape}")
    if "conv_flat" in a:
        _expect(path, "conv_flat", a["conv_flat"].shape == (n_p * nf, n),
                f"should be {n_p * nf} x {n}, got {a['conv_flat'].shape}")
    if all(k in a for k in LAYERS):
        nh, K = a["W1"].shape[0], a["W2"].shape[0]
        want = {"W1": (nh, n_p * nf), "b1": (nh, 1), "W2": (K, nh), "b2": (K, 1)}
        for k, shape in want.items():  # a bias may also be a flat vector
            ok = a[k].shape == shape or (shape[1] == 1 and a[k].shape == shape[:1])
            _expect(path, k, ok, f"should be {shape[0]} x {shape[1]}, got {a[k].shape}")


def check_patch_file(path) -> PatchCheck:
    """Reads debug_conv_info.npz and compares every array it holds with dl2424's."""
    path = Path(path)
    a = _load(path)
    X, Fs = a["X"], a["Fs"]
    _expect(path, "X", X.ndim == 2 and X.shape[0] == CHANNELS * SIDE * SIDE,
            f"should be 3072 x n (one CIFAR image per column), got {X.shape}")
    _expect(path, "Fs", Fs.ndim == 4 and Fs.shape[0] == Fs.shape[1]
            and Fs.shape[2] == CHANNELS and SIDE % Fs.shape[0] == 0,
            f"should be f x f x 3 x nf with f dividing 32, got {Fs.shape}")
    n, f, nf = X.shape[1], Fs.shape[0], Fs.shape[3]
    _shapes_fit(path, a, n, f, nf)
    x = X.T.reshape(n, CHANNELS, SIDE, SIDE)
    out, _ = pf.patchify_forward(x, Fs)  # (n, n_p, nf)
    diffs = {"conv_outputs": _max_diff(out.reshape(n, SIDE // f, SIDE // f, nf)
                                       .transpose(1, 2, 3, 0), a["conv_outputs"])}
    if "conv_flat" in a:
        diffs["conv_flat"] = _max_diff(np.maximum(out, 0).reshape(n, -1).T, a["conv_flat"])
    if all(k in a for k in LAYERS):
        model = _model(a, f, nf)
        s, cache = model.forward(X.T, train=False)
        x1 = cache[3]  # the hidden ReLU's output (PatchNet.forward's cache order)
        for key, mine in (("X1", x1.T), ("P", softmax(s).T)):
            if key in a:
                diffs[key] = _max_diff(mine, a[key])
        if "Y" in a:
            diffs.update(_gradients(path, model, X, a))
    return PatchCheck(path, n, f, nf, diffs)


def _gradients(path, model: PatchNet, X, a) -> dict:
    """The file's gradients against the model's for the mean cross-entropy with target Y."""
    K, n = model.params["W2"].shape[1], X.shape[1]
    _expect(path, "Y", a["Y"].shape == (K, n), f"should be {K} x {n}, got {a['Y'].shape}")
    _, _, grads = model.loss(X.T, a["Y"].T.copy())
    mine = {"F": grads["F"].reshape(-1, grads["F"].shape[-1]), "W1": grads["W1"].T,
            "b1": grads["b1"], "W2": grads["W2"].T, "b2": grads["b2"]}
    out = {}
    for key, name in GRADS.items():
        if key in a:
            _expect(path, key, a[key].size == mine[name].size,
                    f"should have {mine[name].size} entries, got shape {a[key].shape}")
            out[key] = _max_diff(mine[name], a[key].reshape(mine[name].shape))
    return out

