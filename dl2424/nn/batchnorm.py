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

import functools

import numpy as np

from . import kinks
from .parallel import total

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


# ------------------------------------------------------------------ channels-last, in parts
# The image ConvNet keeps a conv layer's output as the (n H W, F) matrix of its NHWC map
# and works on it in parts of the batch (dl2424.nn.parallel). These are batchnorm_forward
# and batchnorm_backward on the rows of that matrix, ReLU fused in, in place, in three
# passes forward and two backward; per-part sums are added in part order.
#
# A part's (m, F) rows are seen as (m / r, r F) (`_wide`), r a power of two, so that a
# per-channel vector tiled r times broadcasts along rows of about 512 entries: NumPy runs
# an inner loop per row, and rows of 16 or 32 channels would spend more time starting
# loops than computing. Per-channel sums fold the r copies back (`_fold`).
WIDE_ROW = 512
DOT_BLOCK = 2**18  # entries of z - mu (or z k_z) made at a time (1 MB of float32)


def _repeats(m, F):
    """r: the largest power of two that divides m with r F <= WIDE_ROW (at least 1)."""
    r = 1
    while 2 * r * F <= WIDE_ROW and m % (2 * r) == 0:
        r *= 2
    return r


def _wide(x, r):
    """An (m, F) block as its (m / r, r F) view."""
    return x.reshape(-1, r * x.shape[1])


def _tiled(v, r):
    """np.tile(v, r) for a per-channel vector, without np.tile's Python (~5 us a call, which
    at two threads holds the GIL the other thread waits for)."""
    out = np.empty((r, v.shape[0]), v.dtype)
    out[...] = v
    return out.reshape(-1)


@functools.lru_cache(maxsize=64)
def _ones(n, dtype):
    """A read-only vector of n ones (channel_sums' product), made once per length."""
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


def _fold(v, r):
    """Per-channel totals of a (r F,) sum over a wide view."""
    return v.reshape(r, -1).sum(axis=0) if r > 1 else v


def channel_sums(x):
    """Column sums of an (m, F) block: one BLAS product with a ones vector (on the wide
    view, then folded)."""
    r = _repeats(*x.shape)
    w = _wide(x, r)
    return _fold(_ones(w.shape[0], x.dtype) @ w, r)


def scale_shift(x, scale, shift):
    """x = x scale + shift for the rows of an (m, F) block and per-channel (F,) vectors, in
    place; scale None: x += shift."""
    r = _repeats(*x.shape)
    w = _wide(x, r)
    if scale is not None:
        w *= _tiled(scale, r)
    w += _tiled(shift, r)


def block_stats(z):
    """(count, mean, M2) of the rows of an (m, F) block: per-channel mean and sum of squared
    deviations from it. The block is read twice, so call it while the block is in cache
    (conv2d's `then`)."""
    m = z.shape[0]
    mean = channel_sums(z) / z.dtype.type(m)
    r = _repeats(*z.shape)
    d = _wide(z, r) - _tiled(mean, r)  # block-sized temporary
    return m, mean, _fold(np.einsum("ij,ij->j", d, d), r)


def merge_stats(stats):
    """Mean and biased variance of the union of blocks, from their block_stats in order
    (the pairwise update of Chan, Golub & LeVeque 1979: no sum of squares of raw values,
    so no cancellation)."""
    n, mean, M2 = stats[0]
    for nb, mb, M2b in stats[1:]:
        delta, tot = mb - mean, n + nb
        mean = mean + delta * (nb / tot)
        M2 = M2 + M2b + delta * delta * (n * nb / tot)
        n = tot
    return mean, M2 / n


def affine(gamma, beta, mu, var, eps):
    """(inv_std, scale, shift) of BN with statistics mu and var: y = z scale + shift, for
    y = (z - mu) inv_std gamma + beta."""
    inv_std = 1.0 / np.sqrt(var + eps)
    scale = gamma * inv_std
    return inv_std, scale, beta - mu * scale


def rows_forward(z, gamma, beta, state, train, eps, alpha, relu, y, cuts, run, stats=None,
                 defer=False):
    """Batch norm (then ReLU when `relu`) of the rows of z (m, F), in parts.

    Inputs:
    - z: (m, F) conv output (left as it is: the cache keeps it and the batch mean)
    - y: (m, F) buffer for the output, or a function that returns one (called only when the
      output is not z itself)
    - cuts, run: the parts' row slices, and the map that runs fn(i) for each part index
    - stats: per part, the block_stats of its blocks of rows in order, when the caller
      already has them (the conv layer takes them while each block is in cache)
    - defer: the caller (a max-pool) finishes the output: the pool commutes with the
      shift, the ReLU and, when every scale is positive, the scale, and applies them to
      its four times smaller output
    Returns (h, deferred, cache). Not deferred: h is y = z scale + shift (then ReLU) and
    deferred is None. Deferred: (scale, shift) with h = z (every scale > 0: no pass over
    z here), or (None, shift) with h = y = z scale; the output is h scale + shift, then
    ReLU. The moving averages in `state` are updated as in batchnorm_forward.
    """
    parts = range(len(cuts))
    if train:
        stats = stats or run(lambda i: [block_stats(z[cuts[i]])], parts)
        mu, var = merge_stats([b for part in stats for b in part])
        _update(state, mu, var, alpha)
    else:
        mu, var = state["mean"], state["var"]
    inv_std, scale, shift = affine(gamma, beta, mu, var, eps)
    if defer and np.all(scale > 0):  # max(z scale) = max(z) scale: the pool scales
        return z, (scale, shift), (z, None, gamma, inv_std, mu, train, False)
    y = y() if callable(y) else y
    cache = (z, y, gamma, inv_std, mu, train, relu and not defer)

    def normalise(i):
        c = cuts[i]
        r = _repeats(*z[c].shape)
        out = _wide(y[c], r)
        np.multiply(_wide(z[c], r), _tiled(scale, r), out=out)
        if not defer:
            out += _tiled(shift, r)
            if relu:
                np.maximum(out, 0, out=out)

    run(normalise, parts)
    if defer:
        return y, (None, shift), cache
    if relu:
        kinks.note_sign("relu", y)  # y > 0 exactly where the ReLU's input is
    return y, None, cache


def _centred_dots(g, z, mu):
    """Per channel, sum over rows of g * (z - mu) for (m, F) blocks, z - mu made in blocks
    of rows small enough to stay in cache."""
    r = _repeats(*z.shape)
    gw, zw, mu_w = _wide(g, r), _wide(z, r), _tiled(mu, r)
    step = max(1, DOT_BLOCK // zw.shape[1])
    partial = [np.einsum("ij,ij->j", gw[s : s + step], zw[s : s + step] - mu_w)
               for s in range(0, zw.shape[0], step)]
    return _fold(total(partial), r)


def rows_backward(dy, cache, cuts, run, then, relu_done=False, pooled=None):
    """Gradients of rows_forward, in parts; dy (m, F) is overwritten with dz.

    then(i, dz_part) runs on part i's dz as soon as it is ready (the conv layer's own
    backward), on the same thread. relu_done: dy is already zero where the ReLU cut (a
    max-pool after the ReLU did it on its smaller map). pooled: per part, (the max-pool's
    upstream gradient, the pooled z) as rows, when the pool took z itself (a deferred
    scale): dy at each position is the sum of the gradients of the windows it won, so the
    sums over positions of dy and of dy (z - mu) are sums over the four times fewer
    windows of their gradient and of their gradient times (max z - mu). Returns (dgamma,
    dbeta, [then's results in part order]).
    """
    z, y, gamma, inv_std, mu, train, relu = cache
    N, parts = z.shape[0], range(len(cuts))

    def sums(i):
        if pooled is not None:
            g, z_max = pooled[i]
            return channel_sums(g), _centred_dots(g, z_max, mu)
        g, c = dy[cuts[i]], cuts[i]
        if relu and not relu_done:
            np.multiply(g, y[c] > 0, out=g)
        return channel_sums(g), _centred_dots(g, z[c], mu)

    partial = run(sums, parts)
    dbeta = total([p[0] for p in partial])
    dgamma = total([p[1] for p in partial]) * inv_std
    scale = gamma * inv_std
    # dx = scale * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N) with xhat = (z - mu) inv_std
    #    = scale dy - k_z z - (k_0 - k_z mu)
    k_z, k_0 = scale * inv_std * dgamma / N, scale * dbeta / N
    k_c = k_0 - k_z * mu

    def apply(i):
        g, c = dy[cuts[i]], cuts[i]
        r = _repeats(*g.shape)
        gw = _wide(g, r)
        gw *= _tiled(scale, r)
        if train:
            zw, kz_w = _wide(z[c], r), _tiled(k_z, r)
            step = max(1, DOT_BLOCK // zw.shape[1])  # z k_z a block of rows at a time
            tmp = np.empty((min(step, zw.shape[0]), zw.shape[1]), zw.dtype)
            for s in range(0, zw.shape[0], step):
                t = tmp[: min(step, zw.shape[0] - s)]
                gw[s : s + step] -= np.multiply(zw[s : s + step], kz_w, out=t)
            gw -= _tiled(k_c, r)
        return then(i, g)

    return dgamma, dbeta, run(apply, parts)
