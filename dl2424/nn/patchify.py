"""The patchify convolution (DD2424 Assignment 3, 2026) as a forward/backward pair.

nf filters of size f x f x C applied with stride f and no padding: the f x f patches do not
overlap, so each image's patch matrix MX (n_p x C f^2, the hand-out's M_X) is a reshape and
transposition of the image, never a copy loop, and the whole layer is one BLAS product
over the batch:

    H = MX F_all            (n, n_p, nf) = (n, n_p, C f^2) @ (C f^2, nf)
    dF_all = sum_i MX_i^T G_i   (the hand-out's eq. 22; the 1/n is already in G)

Layouts, those of the hand-out's code:
- x is (n, C, H, W) (CIFAR's channel planes); patch l = r (W/f) + c, row-major over the grid;
- a patch row of MX is the f x f x C block in C order (row in patch, column, channel);
- F is the hand-out's Fs, (f, f, C, nf), and F_all = F.reshape(f f C, nf) (a view);
- the output (n, n_p, nf) flattened is the hand-out's conv_flat: entry l nf + k.
"""

from __future__ import annotations


def grid(x_shape, f):
    """(P_h, P_w): the patch grid of an (n, C, H, W) input; H and W must be multiples of f."""
    _, _, H, W = x_shape
    if H % f or W % f:
        raise ValueError(f"patch size {f} does not divide the {H}x{W} image")
    return H // f, W // f


def patch_matrix(x, f):
    """MX of every image at once: (n, n_p, f f C), a transposed copy of x (n, C, H, W)."""
    n, C = x.shape[:2]
    ph, pw = grid(x.shape, f)
    blocks = x.reshape(n, C, ph, f, pw, f).transpose(0, 2, 4, 3, 5, 1)  # n, r, c, i, j, ch
    return blocks.reshape(n, ph * pw, f * f * C)


def patch_matrix_adjoint(dmx, x_shape, f):
    """The inverse rearrangement: (n, n_p, f f C) back to images (n, C, H, W)."""
    n, C, _, _ = x_shape
    ph, pw = grid(x_shape, f)
    blocks = dmx.reshape(n, ph, pw, f, f, C).transpose(0, 5, 1, 3, 2, 4)  # n, ch, r, i, c, j
    return blocks.reshape(x_shape)


def patchify_forward(x, F, b=None):
    """Inputs: x (n, C, H, W); F (f, f, C, nf); b (nf,) or None.
    Returns (out (n, n_p, nf), cache)."""
    f, nf = F.shape[0], F.shape[3]
    mx = patch_matrix(x, f)
    n, n_p, d = mx.shape
    out = (mx.reshape(n * n_p, d) @ F.reshape(d, nf)).reshape(n, n_p, nf)
    if b is not None:
        out += b
    return out, (mx, F, x.shape, b is not None)


def patchify_backward(dout, cache, input_grad: bool = True):
    """dout (n, n_p, nf) -> (dx or None, dF (f, f, C, nf), db or None).
    The input gradient is skipped (None) with input_grad=False: the data needs none."""
    mx, F, x_shape, has_bias = cache
    f, nf = F.shape[0], F.shape[3]
    n, n_p, d = mx.shape
    g = dout.reshape(n * n_p, nf)
    dF = (mx.reshape(n * n_p, d).T @ g).reshape(F.shape)
    db = g.sum(axis=0) if has_bias else None
    dx = None
    if input_grad:
        dx = patch_matrix_adjoint((g @ F.reshape(d, nf).T).reshape(n, n_p, d), x_shape, f)
    return dx, dF, db
