"""Batch normalisation as a forward/backward pair with an explicit cache (CS231n style).

Features live on axis 1: x is (n, m) after a fully connected layer, or (n, C, H, W) after a
convolution ("spatial" BN: one mean and variance per channel over the n*H*W positions).
Both cases are the same closed form; only the axes the statistics are taken over differ.

Training mode normalises with the batch mean and *biased* variance (DD2424 A3 eq. 12-14,
UvA A1 ex. 3) and updates moving averages avg <- alpha * avg + (1 - alpha) * batch_stat
(A3 eq. 38-39), seeded by the first batch. Evaluation mode uses the moving averages.

The moving averages of one BN layer are a dict {"mean": (m,), "var": (m,), "count": ()},
updated in place. A model keeps them flat in its `state` under "<prefix>.mean" etc.
(`init_state`), and hands a layer its own view with `layer_state(state, prefix)`.
"""

from __future__ import annotations

import numpy as np

STATE_KEYS = ("mean", "var", "count")


def init_state(prefix, m, dtype):
    """Flat state entries for one BN layer of m features, before any training batch.

    mean 0 and var 1 make evaluation before training the identity normalisation; the
    training step with count == 0 overwrites them with the first batch's statistics.
    """
    return {
        f"{prefix}.mean": np.zeros(m, dtype=dtype),
        f"{prefix}.var": np.ones(m, dtype=dtype),
        f"{prefix}.count": np.zeros((), dtype=np.int64),
    }


def layer_state(state, prefix):
    """The {"mean", "var", "count"} view of one layer's entries in a flat state dict."""
    return {k: state[f"{prefix}.{k}"] for k in STATE_KEYS}


def _axes(x):
    """The axes statistics are taken over and the shape that broadcasts (m,) against x."""
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return axes, shape


def batchnorm_forward(x, gamma, beta, state, train, eps=1e-5, alpha=0.9):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta, per feature (axis 1).

    Inputs:
    - x: (n, m), or (n, m, H, W) for per-channel statistics
    - gamma, beta: (m,) scale and shift
    - state: {"mean": (m,), "var": (m,), "count": ()} moving averages, updated in place
      when train is True (see `layer_state`)
    - train: True uses the batch statistics; False the moving averages
    - alpha: moving-average decay
    Returns (out, cache) with out shaped like x.
    """
    axes, shape = _axes(x)
    # Two full-size arrays (xhat, out), the rest in place: BN on conv maps is memory-bound.
    if train:
        mu = x.mean(axis=axes)
        xhat = x - mu.reshape(shape)
        out = np.square(xhat)
        var = out.mean(axis=axes)  # biased: divides by the number of positions
        _update(state, mu, var, alpha)
    else:
        xhat = x - state["mean"].reshape(shape)
        out = np.empty_like(xhat)
        var = state["var"]
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat *= inv_std.reshape(shape)
    np.multiply(xhat, gamma.reshape(shape), out=out)
    out += beta.reshape(shape)
    return out, (xhat, gamma, inv_std, train)


def _update(state, mu, var, alpha):
    if state["count"] == 0:
        state["mean"][...] = mu
        state["var"][...] = var
    else:
        state["mean"][...] = alpha * state["mean"] + (1 - alpha) * mu
        state["var"][...] = alpha * state["var"] + (1 - alpha) * var
    state["count"][...] += 1


def batchnorm_backward(dout, cache):
    """Gradients of batchnorm_forward.

    In training mode mu and var depend on every example, which couples the rows; the
    closed form (UvA A1 ex. 3.2a; DD2424 A3 eq. 31-37 with gamma folded in), with N the
    number of positions per feature, is
        dx = gamma / (N sqrt(var + eps)) * (N dy - sum dy - xhat * sum(dy * xhat)).
    In evaluation mode the statistics are constants and dx = gamma dy / sqrt(var + eps).

    Inputs:
    - dout: upstream gradient, shaped like x
    Returns (dx, dgamma, dbeta); dgamma = sum dy * xhat, dbeta = sum dy over all but axis 1.
    """
    xhat, gamma, inv_std, train = cache
    axes, shape = _axes(dout)
    dbeta = dout.sum(axis=axes)
    dgamma = _sum_of_products(dout, xhat)
    scale = (gamma * inv_std).reshape(shape)
    if not train:
        return dout * scale, dgamma, dbeta
    N = dout.size // dout.shape[1]
    # dx = scale * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N), built in one buffer
    dx = xhat * (-dgamma / N).reshape(shape)
    dx += dout
    dx -= (dbeta / N).reshape(shape)
    dx *= scale
    return dx, dgamma, dbeta


def _sum_of_products(a, b):
    """sum(a * b) over every axis but 1, without the (a * b) temporary."""
    idx = "abcdefgh"[: a.ndim]
    return np.einsum(f"{idx},{idx}->{idx[1]}", a, b)
