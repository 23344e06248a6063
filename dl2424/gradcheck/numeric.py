"""Finite differences: the hand-outs' ComputeGradsNumSlow (centred) and ComputeGradsNum
(forward), the step each parameter gets, and what one difference is worth near a kink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..nn import kinks

EPS64 = np.finfo(np.float64).eps
H_MAX = 1e-5  # the hand-outs' step, for parameters of size ~0.01 and larger
H_REL = 1e-3  # smaller parameters get 1e-3 of their scale (see step_for)
H_MIN = 1e-9


def entries(x: np.ndarray):
    """x's entries in C order, writable in place (flat[i] = v changes x): x.reshape(-1) when
    that is a view, else x.flat (a parameter whose memory is laid out in another order, such
    as the image ConvNet's filters)."""
    flat = x.reshape(-1)
    return flat if np.shares_memory(flat, x) else x.flat


def numerical_grad(f: Callable[[], float], x: np.ndarray, h: float = 1e-5,
                   method: str = "centred", idx=None) -> np.ndarray:
    """Gradient of the scalar f() w.r.t. the array x, by finite differences.

    x is perturbed in place (f must read it) and restored. centred: (f(x+h) - f(x-h)) / 2h;
    forward: (f(x+h) - f(x)) / h. With idx (flat indices) only those entries, as a flat
    array; without, every entry, shaped like x.
    """
    flat = entries(x)
    which = np.arange(x.size) if idx is None else np.asarray(idx)
    out = np.zeros(len(which), dtype=np.float64)
    base = f() if method == "forward" else None
    for j, i in enumerate(which):
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


def step_for(w: np.ndarray) -> float:
    """The step for a parameter array: 1e-3 of its root-mean-square size, at most 1e-5.

    A step must be small next to the values it moves: batch norm makes J invariant to the
    scale of the weights before it, so J's curvature grows like 1/|w|^2 and the centred
    difference's error like (h/|w|)^2 (A3's weights of size 1e-4 fail at h = 1e-5 and pass
    at 1e-7). Below 1e-5 rounding costs accuracy (the noise floor grows like 1/h), so
    parameters of size 0.01 and larger keep the hand-outs' 1e-5.
    """
    rms = float(np.sqrt(np.mean(np.square(w)))) if w.size else 0.0
    return float(np.clip(H_REL * rms, H_MIN, H_MAX)) if rms > 0 else H_MAX


def rounding_noise(f: Callable[[], float], params: dict[str, np.ndarray],
                   rng: np.random.Generator, n_params: int = 3, per_param: int = 2) -> float:
    """How far float64 rounding moves J: the largest half second difference
    |J(theta + d) + J(theta - d) - 2 J(theta)| / 2 over a few entries, d = 4 ulps of the
    entry. The second difference cancels the gradient's share; what is left is the rounding
    noise of the forward pass (~1e-15 for a linear classifier, ~1e-14 for a deep
    batch-normalised MLP). Entries come from up to n_params parameters spread over the net."""
    names = list(params)
    picks = sorted({names[round(k * (len(names) - 1) / max(1, n_params - 1))]
                    for k in range(min(n_params, len(names)))}, key=names.index)
    J0, worst = f(), 0.0
    for name in picks:
        flat = entries(params[name])
        size = params[name].size
        for i in rng.choice(size, min(per_param, size), replace=False):
            old = flat[i]
            d = 4 * np.spacing(max(abs(old), 1e-3))
            try:
                flat[i] = old + d
                up = f()
                flat[i] = old - d
                worst = max(worst, abs(up + f() - 2 * J0) / 2)
            finally:
                flat[i] = old
    return float(max(worst, EPS64 * max(1.0, abs(J0))))


def noise_floor(noise: float, h: float) -> float:
    """Absolute differences below this are rounding, not disagreement: each of J(theta+h)
    and J(theta-h) is off by up to `noise`, and the difference quotient divides by 2h.
    Twice that, for safety, and never below 8 eps / h."""
    return float(max(2 * noise, 8 * EPS64) / h)


@dataclass
class Estimate:
    """One finite difference: its value, the step, and the kink kinds it crossed."""

    value: float
    h: float
    crossed: set[str]


def difference(f: Callable[[], float], flat: np.ndarray, i: int, h: float, method: str,
               at_theta: tuple[float, list] | None = None) -> Estimate:
    """The finite difference of f along entry i of `flat` (perturbed in place, restored),
    recording the non-smooth layers' choices at both points. Forward differences need
    (J, choices) at theta in `at_theta`."""
    old = flat[i]
    try:
        flat[i] = old + h
        with kinks.recording() as rec_up:
            up = f()
        if method == "forward":
            base, rec_base = at_theta
            return Estimate((up - base) / h, h, kinks.crossed(rec_up, rec_base))
        flat[i] = old - h
        with kinks.recording() as rec_down:
            down = f()
        return Estimate((up - down) / (2 * h), h, kinks.crossed(rec_up, rec_down))
    finally:
        flat[i] = old


def stable_estimate(f, flat, i, h, method, at_theta=None) -> Estimate | None:
    """The step-halving sequence 16h, 8h, ..., h/4: the estimate of the adjacent pair that
    agrees best (Richardson-extrapolated for centred differences, whose error is O(h^2));
    pairs that cross a kink are skipped. None when every pair does.

    Larger steps win where rounding dominates (a deep batch-normalised MLP computes J to
    ~1e-14, 1e-9 in the gradient at h = 1e-5), smaller ones where curvature does."""
    steps = [h * 2.0**k for k in range(4, -3, -1)]
    ests = [difference(f, flat, i, s, method, at_theta) for s in steps]
    best, gap = None, np.inf
    for big, small in zip(ests, ests[1:], strict=False):
        if big.crossed or small.crossed:
            continue
        if abs(big.value - small.value) < gap:
            gap = abs(big.value - small.value)
            value = ((4 * small.value - big.value) / 3 if method == "centred"
                     else 2 * small.value - big.value)
            best = Estimate(value, small.h, set())
    return best
