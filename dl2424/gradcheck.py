"""Analytic gradients of the cost against finite differences, for any registered model.

The hand-outs' ComputeGradsNumSlow (centred, (J(w+h) - J(w-h)) / 2h) and ComputeGradsNum
(forward, (J(w+h) - J(w)) / h), generalised to every entry of every parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .build import build_model
from .config import Experiment
from .data.bundle import DataBundle
from .errors import UserError
from .rng import Stream, generator
from .trainer import class_weights


def rel_error(a, n, eps=1e-12):
    """Elementwise |a - n| / max(eps, |a| + |n|) (A1 hand-out, section on gradient checks)."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    return np.abs(a - n) / np.maximum(eps, np.abs(a) + np.abs(n))


def max_rel_error(a, n, eps=1e-12, atol=0.0) -> float:
    """The largest rel_error over the entries whose absolute difference exceeds `atol`
    (0: all entries). With atol about the noise floor of centred differences, entries whose
    true gradient is exactly zero (noise / noise = 1) do not count."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    mask = np.abs(a - n) > atol
    return float(rel_error(a[mask], n[mask], eps).max(initial=0.0))


@dataclass
class ParamCheck:
    name: str
    shape: tuple
    checked: int
    max_abs: float
    max_rel: float
    passed: bool


def numerical_gradient(f, x, h=1e-5, method="centred", idx=None):
    """Finite differences of scalar f() w.r.t. array x, which is perturbed in place and
    restored. Centred: (f(x+h) - f(x-h)) / 2h; forward: (f(x+h) - f(x)) / h. Returns the
    whole gradient (x's shape, float64), or only the entries at flat indices `idx`."""
    flat = x.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous: it is perturbed in place"
    picked = np.arange(flat.size) if idx is None else idx
    out = np.zeros(len(picked))
    base = f() if method == "forward" else None
    for j, i in enumerate(picked):
        old = flat[i]
        flat[i] = old + h
        up = f()
        if method == "forward":
            out[j] = (up - base) / h
        else:
            flat[i] = old - h
            out[j] = (up - f()) / (2 * h)
        flat[i] = old
    return out.reshape(x.shape) if idx is None else out


def check_model(model, X, target, weights=None, *, h=1e-5, method="centred", tol=1e-6,
                eps=1e-8, atol=4e-10, max_entries=None, seed=0) -> list[ParamCheck]:
    """Compare grads of J = loss + penalty for every param. Dropout masks are fixed by
    giving every evaluation a generator with the same seed.

    Entries whose absolute difference is at most `atol` agree: that is the noise floor of
    the differences (a few eps_machine |J| / h: 1e-10 or so for float64 and h = 1e-5;
    rounding in a deep forward pass adds to it), and where
    the true gradient is exactly zero (biases under batch norm, inactive hinges) the
    relative error of two noise values would be 1. The max relative error is reported over
    all entries, so such entries show up in it while still passing."""

    def cost_and_grads():
        loss, pen, grads = model.loss(X, target, weights, train=True,
                                      rng=generator(seed, Stream.CHECK))
        return loss + pen, grads

    _, analytic = cost_and_grads()
    pick = generator(seed, Stream.CHECK, 1)
    results = []
    for name, w in model.params.items():
        n = w.size
        idx = (np.arange(n) if max_entries is None or n <= max_entries
               else np.sort(pick.choice(n, max_entries, replace=False)))
        num = numerical_gradient(lambda: cost_and_grads()[0], w, h, method, idx)
        ana = analytic[name].reshape(-1)[idx].astype(np.float64)
        diff = np.abs(ana - num)
        rel = rel_error(ana, num, eps)
        ok = (rel <= tol) | (diff <= atol)
        results.append(ParamCheck(name, w.shape, len(idx), float(diff.max(initial=0)),
                                  float(rel.max(initial=0)), bool(ok.all())))
    return results


def check_experiment(exp: Experiment, data: DataBundle, *, n: int = 2, dims: int | None = 20,
                     **kw) -> tuple[list[ParamCheck], str]:
    """Build the configured model in float64 on the first n training examples, keeping only
    the first `dims` input dimensions where the model takes flat vectors (the hand-outs'
    reduced problem). Returns the checks and a description of the problem checked."""
    if n < 1 or n > len(data.train):
        raise UserError(f"--n: need 1..{len(data.train)} examples, got {n}")
    tr = data.train
    info, X = data.info, tr.X[:n]
    model = None
    flat = len(info.input_shape) == 1 and np.issubdtype(X.dtype, np.floating)
    if dims and flat and dims < info.input_shape[0]:
        small = replace(info, input_shape=(dims,), meta={})
        try:
            model = build_model(exp, small, np.float64)
            info, X = small, X[:, :dims]
        except UserError:  # the model needs the full input (e.g. an image ConvNet)
            model = None
    model = model or build_model(exp, info, np.float64)
    if np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    target = tr.T[:n].astype(np.float64) if tr.T is not None else tr.y[:n]
    weights = (class_weights(tr.y, data.info.n_classes, np.float64)[:n]
               if exp.train.class_weighted else None)
    what = (f"{exp.model.type}, {n} example{'s' if n > 1 else ''}, input {tuple(X.shape[1:])}, "
            f"lambda {exp.model.params.l2}, float64")
    return check_model(model, X, target, weights, seed=exp.seed, **kw), what
