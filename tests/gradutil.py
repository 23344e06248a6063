"""Centred-difference gradients for tests (the hand-outs' ComputeGradsNumSlow, generalised)."""

import numpy as np


def numerical_grad(f, x, h=1e-5):
    """Gradient of scalar f() w.r.t. array x by centred differences; x is perturbed in place."""
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


def rel_error(a, n, eps=1e-12):
    """max |a - n| / max(eps, |a| + |n|), the course's relative error."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    return float(np.max(np.abs(a - n) / np.maximum(eps, np.abs(a) + np.abs(n))))


def significant_rel_error(a, n, atol=1e-10):
    """rel_error over the entries whose absolute difference exceeds `atol`, the noise floor
    of centred differences in float64 (about eps_machine * |J| / h = 2e-11 for h = 1e-5).
    Entries whose true gradient is exactly zero (biases under batch norm, inactive hinges)
    otherwise give noise / noise = 1."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    mask = np.abs(a - n) > atol
    return rel_error(a[mask], n[mask]) if mask.any() else 0.0
