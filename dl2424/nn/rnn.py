"""Recurrent layers as forward/backward pairs with explicit caches (CS231n style).

The hand-out's vanilla RNN (DD2424 A4):  a_t = W h_{t-1} + U x_t + b,  h_t = tanh(a_t),
o_t = V h_t + c,  p_t = softmax(o_t); and an LSTM cell beside it. Row layout as the rest of
dl2424: a batch of B sequences of T character indices x (B, T); hidden states are rows,
stored time-major, H (T, B, m). Parameters are the transposes of the hand-out's:
U (K, m) (LSTM (K, 4m)), W (m, m) (LSTM (m, 4m)), V (m, K).

Speed (the update is a Python loop over T): U x_t for all steps is one row gather of U
(x is one-hot), the output layer and softmax for all steps are one product, and so are
dV, dW, dU (and dH from the outputs) in the backward pass; only h @ W stays in the loop.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------- input


def embed_forward(x, U, b):
    """A_t = U x_t + b for every step: x_t is one-hot, so U x_t is a row gather.

    Inputs: x (B, T) indices 0..n_in-1, U (n_in, n), b (n,).
    Returns: (A (T, B, n) a fresh array, time-major; cache).
    """
    idx = x.T
    A = U[idx]
    A += b
    return A, (idx, U.shape)


def embed_backward(dA, cache):
    """Returns (dU, db) for embed_forward: dU = X dA with X the one-hot columns of the
    inputs, one product (a third of np.add.at's time at the hand-out's size)."""
    idx, u_shape = cache
    flat = idx.reshape(-1)
    X = np.zeros((u_shape[0], flat.size), dA.dtype)
    X[flat, np.arange(flat.size)] = 1
    return X @ dA.reshape(flat.size, -1), dA.sum(axis=(0, 1))


# ---------------------------------------------------------------------------- vanilla RNN


def rnn_forward(A, h0, W):
    """h_t = tanh(A_t + h_{t-1} W) for t = 1..T.

    Inputs: A (T, B, m) input terms (overwritten), h0 (B, m), W (m, m).
    Returns: (H (T, B, m), cache); H[-1] is the state to carry on.
    """
    H = A  # each step's pre-activation becomes its hidden state in place
    h = h0
    hW = np.empty_like(h0)  # np.dot into a buffer: half the cost of h @ W at this size
    for t in range(A.shape[0]):
        a = H[t]
        a += np.dot(h, W, out=hW)
        h = np.tanh(a, out=a)
    return H, (H, h0, W)


def rnn_backward(dH, cache):
    """Inputs: dH (T, B, m) loss gradients w.r.t. every h_t (not yet through time).
    Returns: (dA (T, B, m), dW, dh0)."""
    H, h0, W = cache
    G = 1 - H * H  # tanh'
    dA = np.empty_like(H)
    dh = np.zeros_like(h0)
    WT = W.T
    for t in range(H.shape[0] - 1, -1, -1):
        da = dA[t]
        np.add(dH[t], dh, out=da)
        da *= G[t]
        np.dot(da, WT, out=dh)
    m = H.shape[-1]
    Hprev = _shifted(H, h0)
    dW = Hprev.reshape(-1, m).T @ dA.reshape(-1, m)
    return dA, dW, dh


def _shifted(H, h0):
    """(h_0, ..., h_{T-1}): the states each step starts from."""
    out = np.empty_like(H)
    out[0] = h0
    out[1:] = H[:-1]
    return out


# ---------------------------------------------------------------------------- LSTM


def _sigmoid(x, out):
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def lstm_forward(A, h0, c0, W):
    """Gates [i, f, o, g] = [σ, σ, σ, tanh](A_t + h_{t-1} W); c_t = f c_{t-1} + i g;
    h_t = o tanh(c_t).

    Inputs: A (T, B, 4m) input terms (overwritten: they become the gate values),
    h0, c0 (B, m), W (m, 4m).
    Returns: (H (T, B, m), C (T, B, m), cache).
    """
    T, B, m4 = A.shape
    m = m4 // 4
    H = np.empty((T, B, m), A.dtype)
    C = np.empty_like(H)
    TC = np.empty_like(H)  # tanh(c_t)
    h, c = h0, c0
    hW = np.empty((B, m4), A.dtype)
    for t in range(T):
        g = A[t]
        g += np.dot(h, W, out=hW)
        _sigmoid(g[:, :3 * m], g[:, :3 * m])
        np.tanh(g[:, 3 * m:], out=g[:, 3 * m:])
        c = np.multiply(g[:, m:2 * m], c, out=C[t])
        c += g[:, :m] * g[:, 3 * m:]
        np.tanh(c, out=TC[t])
        h = np.multiply(g[:, 2 * m:3 * m], TC[t], out=H[t])
    return H, C, (A, H, C, TC, h0, c0, W)


def lstm_backward(dH, cache, dcT=None):
    """Inputs: dH (T, B, m) loss gradients w.r.t. every h_t; optional dcT (B, m).
    Returns: (dA (T, B, 4m), dW, dh0, dc0)."""
    Gt, H, C, TC, h0, c0, W = cache
    T, B, m = H.shape
    Gt4 = Gt.reshape(T, B, 4, m)
    i, f, o, g = Gt4[:, :, 0], Gt4[:, :, 1], Gt4[:, :, 2], Gt4[:, :, 3]
    Cprev = _shifted(C, c0)
    # dA_t = [dc i', dc c_{t-1} f', dh tanh(c) o', dc i g'] with the local factors below;
    # dc_t = dc_{t+1} f_{t+1} + dh_t o (1 - tanh²c) goes through time.
    P = np.empty((T, B, 4, m), Gt.dtype)
    P[:, :, 0] = g * i * (1 - i)
    P[:, :, 1] = Cprev * f * (1 - f)
    P[:, :, 2] = TC * o * (1 - o)
    P[:, :, 3] = i * (1 - g * g)
    K1 = o * (1 - TC * TC)
    dA = np.empty((T, B, 4, m), Gt.dtype)
    dh = np.zeros_like(h0)
    dc = np.zeros_like(c0) if dcT is None else dcT.copy()
    WT = W.T
    for t in range(T - 1, -1, -1):
        dht = dH[t] + dh
        dc += dht * K1[t]
        dat = dA[t]
        np.multiply(P[t], dc[:, None, :], out=dat)
        np.multiply(P[t, :, 2], dht, out=dat[:, 2])
        dc *= f[t]
        np.dot(dat.reshape(B, 4 * m), WT, out=dh)
    dA = dA.reshape(T, B, 4 * m)
    Hprev = _shifted(H, h0)
    dW = Hprev.reshape(-1, m).T @ dA.reshape(-1, 4 * m)
    return dA, dW, dh, dc


# ---------------------------------------------------------------------------- output


def seq_softmax_loss(O, y, n_seq=1, mask=None, reduction="sum"):
    """Cross-entropy of softmax(o_t) against the next characters, all steps at once.

    Inputs: O (N, K) scores of the N = T*B positions of n_seq = B sequences; y (N,)
    targets; mask (N,) 0/1 weights (padding after the end of a line) or None.
    reduction: "sum" adds the losses of a sequence (2017-2023 hand-outs) and averages over
    the B sequences; "mean" averages over all (unmasked) steps (2026). B = 1 gives the
    hand-out's value either way.
    Returns: (loss, dO, P) with P the probabilities.
    """
    N, K = O.shape
    z = O - O.max(axis=1, keepdims=True)
    P = np.exp(z)
    s = P.sum(axis=1, keepdims=True)
    P /= s
    rows = np.arange(N)
    nll = np.log(s[:, 0]) - z[rows, y]
    dO = P.copy()
    dO[rows, y] -= 1
    if mask is None:
        scale = 1.0 / (N if reduction == "mean" else n_seq)
        loss = float(nll.sum() * scale)
        dO *= scale
    else:
        w = mask.astype(O.dtype)
        scale = 1.0 / (max(w.sum(), 1.0) if reduction == "mean" else n_seq)
        loss = float((nll * w).sum() * scale)
        dO *= (w * scale)[:, None]
    return loss, dO, P


# ---------------------------------------------------------------------------- sampling


def sample_next(p, u, top_p: float = 1.0):
    """Inverse-CDF sampling as the hand-out: the first index whose cumulative probability
    exceeds u ~ U(0, 1). With top_p < 1 only the nucleus is kept: the most probable
    characters whose probabilities first reach top_p in total, renormalised.

    Inputs: p (K,) probabilities, u a uniform number. Returns: an index into p.
    """
    if top_p >= 1.0:
        return min(int(np.searchsorted(np.cumsum(p), u, side="right")), len(p) - 1)
    order = np.argsort(-p, kind="stable")
    cp = np.cumsum(p[order])
    keep = int(np.searchsorted(cp, top_p * cp[-1])) + 1  # first k with cp[k-1] >= top_p
    cp = cp[:keep]
    j = min(int(np.searchsorted(cp, u * cp[-1], side="right")), keep - 1)
    return int(order[j])
