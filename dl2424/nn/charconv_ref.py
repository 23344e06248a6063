"""The hand-out's matrix formulation of the character ConvNet's 1-D convolutions (DD2424
Assignment 3, 2020), the reference that the fast path in charconv.py is checked against.

A per-example teaching aid and test oracle. One name is X (d, n_len), one one-hot column per
character and zero columns for padding; filters are F (d, k, n_f) with F[:, :, i] the i-th
filter; vec(.) stacks columns (MATLAB `(:)`, numpy order="F"). The response S (n_f, n_out)
is S[i, j] = sum(X[:, window j] * F[:, :, i]), so that vec(S) = MF vec(X) = MX vec(F).
Geometry (stride, zero padding, dilation) as in charconv.py.
"""

from __future__ import annotations

import numpy as np

from .charconv import conv_length, pool_length


def vec(A):
    """Column-major stacking, MATLAB's A(:)."""
    return A.reshape(-1, order="F")


def filters_to_handout(F):
    """Fast-path filters (k, d, n_f) -> the hand-out's (d, k, n_f) (a view)."""
    return F.transpose(1, 0, 2)


def filters_from_handout(F):
    """The hand-out's filters (d, k, n_f) -> fast-path (k, d, n_f), contiguous."""
    return np.ascontiguousarray(F.transpose(1, 0, 2))


def make_mf_matrix(F, n_len, stride=1, pad=0, dilation=1):
    """The hand-out's MakeMFMatrix: the conv as a matrix acting on vec(X).

    Block row j (n_f rows) holds V_F, the (n_f, d*k) matrix whose row i is vec(F_i)^T,
    split into k blocks of d columns placed at the input columns of window j.
    With the defaults it is block-Toeplitz, V_F shifted by d columns per block row.

    Inputs:
    - F: (d, k, n_f) filters
    - n_len: number of input columns
    Returns:
    - MF: (n_out * n_f, n_len * d); n_out = n_len - k + 1 with the defaults
    """
    d, k, n_f = F.shape
    n_out = conv_length(n_len, k, stride, pad, dilation)
    V_F = F.reshape(d * k, n_f, order="F").T
    MF = np.zeros((n_out * n_f, n_len * d), dtype=F.dtype)
    for j in range(n_out):
        for t in range(k):
            c = j * stride + t * dilation - pad
            if 0 <= c < n_len:
                MF[j * n_f:(j + 1) * n_f, c * d:(c + 1) * d] = V_F[:, t * d:(t + 1) * d]
    return MF


def _windows_vec(x_vec, d, k, stride, pad, dilation):
    """(n_out, d*k): row j is vec of the d x k window j of X (zero-padded)."""
    X = x_vec.reshape(d, -1, order="F")
    n_out = conv_length(X.shape[1], k, stride, pad, dilation)
    Xp = np.pad(X, ((0, 0), (pad, pad)))
    cols = np.arange(n_out)[:, None] * stride + np.arange(k) * dilation
    return Xp[:, cols].transpose(1, 2, 0).reshape(n_out, k * d)


def make_mx_matrix(x_vec, d, k, n_f, stride=1, pad=0, dilation=1):
    """The hand-out's MakeMXMatrix: the conv as a matrix acting on vec(F).

    Block row j is I_{n_f} (kron) vec(X[:, window j])^T.

    Inputs:
    - x_vec: (d * n_len,) vec(X)
    Returns:
    - MX: (n_out * n_f, k * n_f * d)
    """
    windows = _windows_vec(x_vec, d, k, stride, pad, dilation)
    n_out, dk = windows.shape
    MX = np.zeros((n_out, n_f, n_f, dk), dtype=x_vec.dtype)
    diag = np.arange(n_f)
    MX[:, diag, diag] = windows[:, None, :]  # the kron: window j on the block diagonal
    return MX.reshape(n_out * n_f, n_f * dk)


def _pool_reference(H, width, stride):
    """Max over windows of the position axis 0 of H (n_out, n_f, n); returns (out, argmax)."""
    n_out = pool_length(H.shape[0], width, stride)
    wins = np.stack([H[p * stride:p * stride + width] for p in range(n_out)])
    arg = wins.argmax(axis=1)
    return np.take_along_axis(wins, arg[:, None], axis=1)[:, 0], arg


def _unpool_reference(G, arg, n_in, stride):
    """Adjoint of _pool_reference: G[p] goes back to the row that held window p's max."""
    dH = np.zeros((n_in, *G.shape[1:]), dtype=G.dtype)
    f, b = np.indices(G.shape[1:])
    for p in range(G.shape[0]):
        dH[p * stride + arg[p], f, b] += G[p]
    return dH


def reference_forward(X, Fs, W, specs, bs=None, bW=None):
    """The hand-out's forward pass, one MF matrix per layer applied to all columns.

    Inputs:
    - X: (d * n_len, n) one name per column, vec of its one-hot (d, n_len) matrix
    - Fs: list of L filters in hand-out layout (n_{l-1}, k_l, n_l), n_0 = d
    - W: (K, n_L * n_len_L)
    - specs: list of L ConvSpec
    - bs, bW: None (the hand-out has no biases) or list of (n_l,) and (K,)
    Returns:
    - P: (K, n) class probabilities
    - cache: what reference_backward needs
    """
    xs, hs, args = [X], [], []
    for l, (F, spec) in enumerate(zip(Fs, specs, strict=True)):
        n_len = xs[-1].shape[0] // F.shape[0]
        MF = make_mf_matrix(F, n_len, spec.stride, spec.pad, spec.dilation)
        S = MF @ xs[-1]
        if bs is not None:
            S += np.tile(bs[l], S.shape[0] // bs[l].size)[:, None]
        H = np.maximum(S, 0)
        hs.append(H)
        if spec.pool > 1:
            # vec order is (position, filter) per column: view it as (n_out, n_f, n)
            H3 = H.reshape(-1, F.shape[2], H.shape[1])
            pooled, arg = _pool_reference(H3, spec.pool, spec.pool_step)
            H = pooled.reshape(-1, H.shape[1])
            args.append(arg)
        else:
            args.append(None)
        xs.append(H)
    s = W @ xs[-1]
    if bW is not None:
        s += bW[:, None]
    e = np.exp(s - s.max(axis=0))
    P = e / e.sum(axis=0)
    return P, (xs, hs, args, Fs, W, specs, bs is not None)


def reference_backward(Y, P, cache):
    """The hand-out's "straightforward" gradients of the mean cross-entropy.

    G = -(Y - P); grad W = (1/n) G X^(L)^T; then per layer, per example j,
    grad vec(F_l) += (1/n) g_j^T MX(x_j^(l-1)), and G <- MF_l^T G (masked by the ReLU).

    Inputs:
    - Y: (K, n) one-hot (or soft) targets; P, cache from reference_forward
    Returns:
    - grads: dict F1..FL, W (and b1..bL, bW with biases) in hand-out layout
    """
    xs, hs, args, Fs, W, specs, has_bias = cache
    n = Y.shape[1]
    G = (P - Y) / n
    grads = {"W": G @ xs[-1].T}
    if has_bias:
        grads["bW"] = G.sum(axis=1)
    G = W.T @ G
    for l in reversed(range(len(Fs))):
        F, spec, H = Fs[l], specs[l], hs[l]
        d, k, n_f = F.shape
        if args[l] is not None:
            G3 = G.reshape(-1, n_f, n)
            G = _unpool_reference(G3, args[l], H.shape[0] // n_f, spec.pool_step)
            G = G.reshape(-1, n)
        G = G * (H > 0)
        if has_bias:
            grads[f"b{l + 1}"] = G.reshape(-1, n_f, n).sum(axis=(0, 2))
        x_prev = xs[l]
        g_vecF = np.zeros(d * k * n_f, dtype=G.dtype)
        for j in range(n):
            MX = make_mx_matrix(x_prev[:, j], d, k, n_f, spec.stride, spec.pad,
                                spec.dilation)
            g_vecF += G[:, j] @ MX
        grads[f"F{l + 1}"] = g_vecF.reshape(d, k, n_f, order="F")
        if l > 0:
            MF = make_mf_matrix(F, x_prev.shape[0] // d, spec.stride, spec.pad,
                                spec.dilation)
            G = MF.T @ G
    return grads
