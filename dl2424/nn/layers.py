"""Fully connected layers as forward/backward pairs with an explicit cache (CS231n style).

Shapes: a batch is a row per example, x is (n, d), W is (d, m), b is (m,).
"""

from __future__ import annotations

import numpy as np

from . import kinks


def affine_forward(x, W, b):
    """out = x W + b.  Returns (out, cache)."""
    out = x @ W
    if b is not None:
        out += b
    return out, (x, W)


def affine_backward(dout, cache):
    """Returns (dx, dW, db) for affine_forward; db is the column sum of dout."""
    x, W = cache
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_params(dout, cache):
    """(dW, db) only: for the first layer, whose input needs no gradient."""
    x, _ = cache
    return x.T @ dout, dout.sum(axis=0)


def relu_forward(x):
    kinks.note_sign("relu", x)
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout, cache):
    # cache is the output: the gradient passes where the output is positive.
    return dout * (cache > 0)


def leaky_relu_forward(x, slope):
    """max(0, x) + slope * min(0, x) (UvA 2019, default slope 0.02); for 0 <= slope < 1
    that is max(x, slope x), which avoids np.where's slow masked select."""
    kinks.note_sign("relu", x)
    return np.maximum(x, slope * x), (x, slope)


def leaky_relu_backward(dout, cache):
    x, slope = cache
    return dout * (slope + (1 - slope) * (x > 0))


def dropout_forward(x, keep, rng):
    """Inverted dropout: keep each unit with probability `keep`, scale by 1/keep.

    The mask comes from the injected generator, so a fixed seed gives a fixed mask.
    """
    mask = (rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
    return x * mask, mask


def dropout_backward(dout, mask):
    return dout * mask


def activation_forward(x, kind: str, slope: float = 0.0):
    """The activation a model's config names ("relu" or "leaky_relu"); the cache says which."""
    if kind == "relu":
        out, cache = relu_forward(x)
    else:
        out, cache = leaky_relu_forward(x, slope)
    return out, (kind, cache)


def activation_backward(dout, cache):
    kind, inner = cache
    return relu_backward(dout, inner) if kind == "relu" else leaky_relu_backward(dout, inner)
