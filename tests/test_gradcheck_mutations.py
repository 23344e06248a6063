"""Proof that the gradient check catches real bugs: deliberately wrong backward passes,
injected by patching the product's functions, each caught with default options.

`python tests/test_gradcheck_mutations.py` prints by how much each one is caught.
"""

import numpy as np
import pytest

from dl2424.gradcheck import Options, check_model
from dl2424.models import base
from dl2424.nn import batchnorm, charconv, conv2d, layers, losses

from .gradcheck_models import CHARCNN, CNN, make_problem

SQUARE_MLP = {"hidden": [6, 6], "l2": 0.05, "init": "xavier"}  # n = 6 = width: square shapes
BN_MLP = {"hidden": [6, 5], "batchnorm": True, "l2": 0.01, "init": "xavier"}
LEAKY_MLP = {"hidden": [6], "activation": "leaky_relu", "leaky_slope": 0.1, "init": "xavier"}
DROPOUT_MLP = {"hidden": [6], "keep": 0.5, "init": "xavier"}
SVM = {"hidden": [], "loss": "svm", "l2": 0.01}
PLAIN_CNN = {"layers": [3, "M", 4], "pool": {"kernel": 2, "stride": 2, "padding": 0}}


def _in_place(buffer, value):
    """Write value into buffer (the image ConvNet's layers fill buffers it owns)."""
    buffer[...] = value
    return buffer


def _wrap(fn, change):
    """fn with its result passed through change(result, *args)."""
    return lambda *a, **k: change(fn(*a, **k), *a)


def _bn_without_mean_term(dout, cache):
    xhat, gamma, inv_std, train = cache
    axes = (0, *range(2, dout.ndim))
    shape = (1, -1) + (1,) * (dout.ndim - 2)
    dgamma, dbeta = (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
    N = dout.size // dout.shape[1]
    dx = (gamma * inv_std).reshape(shape) * (dout - xhat * (dgamma / N).reshape(shape))
    return dx, dgamma, dbeta


def _without_l2(model, X, target, weights=None, train=True, rng=None, with_penalty=True,
                _real=base.Model.loss):
    loss, pen, grads = _real(model, X, target, weights, train, rng, with_penalty)
    for k in model.decay:
        grads[k] = grads[k] - 2 * model.l2 * model.params[k]
    return loss, pen, grads


def _half_l2(model, X, target, weights=None, train=True, rng=None, with_penalty=True,
             _real=base.Model.loss):
    loss, pen, grads = _real(model, X, target, weights, train, rng, with_penalty)
    for k in model.decay:
        grads[k] = grads[k] - model.l2 * model.params[k]  # lambda W where 2 lambda W is due
    return loss, pen, grads


def _bn_without_eps(real):
    def wrong(dout, cache):
        xhat, gamma, inv_std, train = cache
        inv_no_eps = inv_std / np.sqrt(1 - 1e-5 * inv_std**2)  # 1/sqrt(var), eps = 1e-5 lost
        return real(dout, (xhat, gamma, inv_no_eps, train))
    return wrong


def _svm_counts_target_as_active(s, target, w=None, _real=losses.multiclass_svm):
    loss, ds = _real(s, target, w)
    rows = np.arange(s.shape[0])
    ds[rows, target] -= 1.0 / s.shape[0]  # the target's own zero margin counted as active
    return loss, ds


# name -> (model type, config keys, examples, module, attribute, wrong function factory)
MUTATIONS = {
    "softmax-CE gradient missing 1/n": (
        "mlp", SQUARE_MLP, 6, losses, "softmax_cross_entropy",
        lambda f: _wrap(f, lambda r, s, *_: (r[0], r[1] * s.shape[0]))),
    "transposed product (dx = dout W)": (
        "mlp", SQUARE_MLP, 6, layers, "affine_backward",
        lambda f: _wrap(f, lambda r, dout, cache: (
            dout @ cache[1] if cache[1].shape[0] == cache[1].shape[1] else r[0], r[1], r[2]))),
    "bias gradient summed over the wrong axis": (
        "mlp", SQUARE_MLP, 6, layers, "affine_backward_params",
        lambda f: _wrap(f, lambda r, dout, cache: (r[0], dout.sum(axis=1)))),
    "L2 term dropped from the gradient": (
        "mlp", SQUARE_MLP, 6, base.Model, "loss", lambda f: _without_l2),
    "L2 gradient lambda W instead of 2 lambda W (lambda 1e-3)": (
        "mlp", {**SQUARE_MLP, "l2": 1e-3}, 6, base.Model, "loss", lambda f: _half_l2),
    "BN backward without eps (1/sqrt(var))": (
        "mlp", BN_MLP, 4, batchnorm, "batchnorm_backward", _bn_without_eps),
    "BN backward without the mean term": (
        "mlp", BN_MLP, 4, batchnorm, "batchnorm_backward", lambda f: _bn_without_mean_term),
    "BN dgamma without xhat": (
        "mlp", BN_MLP, 4, batchnorm, "batchnorm_backward",
        lambda f: _wrap(f, lambda r, dout, cache: (r[0], r[2], r[2]))),
    "LeakyReLU slope on the wrong side": (
        "mlp", LEAKY_MLP, 3, layers, "leaky_relu_backward",
        lambda f: lambda dout, cache: dout * (cache[1] * (cache[0] > 0) + (cache[0] <= 0))),
    "dropout backward without 1/keep": (
        "mlp", DROPOUT_MLP, 3, layers, "dropout_backward",
        lambda f: lambda dout, mask: dout * (mask > 0)),
    "SVM hinge: target counted as active": (
        "mlp", SVM, 3, losses, "multiclass_svm", lambda f: _svm_counts_target_as_active),
    "1-D conv input gradient off by one position": (
        "charcnn", CHARCNN, 3, charconv, "conv_backward",
        lambda f: _wrap(f, lambda r, *_: (np.roll(r[0], 1, axis=1), r[1], r[2]))),
    "one-hot conv: character index off by one": (
        "charcnn", CHARCNN, 3, charconv, "onehot_conv_backward",
        lambda f: _wrap(f, lambda r, *_: (np.roll(r[0], 1, axis=1), r[1]))),
    "1-D max-pool gradient to the window's first position": (
        "charcnn", CHARCNN, 3, charconv, "maxpool_backward",
        lambda f: lambda dout, cache: f(dout, (np.zeros_like(cache[0]), *cache[1:]))),
    "2-D conv filter gradient flipped (convolution, not correlation)": (
        "cnn", PLAIN_CNN, 2, conv2d, "filter_gradient",
        lambda f: _wrap(f, lambda r, *_: _in_place(r, r[:, :, ::-1, ::-1].copy()))),
    "2-D conv filter gradient paired with the next window": (
        "cnn", PLAIN_CNN, 2, conv2d, "filter_rows_grad",
        lambda f: lambda g, cols, **kw: f(g, np.roll(cols.reshape(g.shape[0], -1), 1, axis=0),
                                          **kw)),
    "2-D first conv's filter gradient paired with the next position": (
        "cnn", PLAIN_CNN, 2, conv2d, "planes_filter_grad",
        lambda f: lambda g, cols: f(np.roll(g, 1, axis=0), cols)),
    "2-D conv input gradient off by one row": (
        "cnn", CNN, 4, conv2d, "conv2d_nhwc_input_grad",
        lambda f: _wrap(f, lambda r, *_: _in_place(r, np.roll(r, 1, axis=1)))),
    "2-D max-pool gradient to the neighbouring column": (
        "cnn", PLAIN_CNN, 2, conv2d, "maxpool2_nhwc_backward",
        lambda f: _wrap(f, lambda r, *_: _in_place(r, np.roll(r, 1, axis=2)))),
}


def run_mutation(name, monkeypatch):
    kind, keys, n, module, attr, make = MUTATIONS[name]
    monkeypatch.setattr(module, attr, make(getattr(module, attr)))
    return check_model(make_problem(kind, keys, n=n), Options())


@pytest.mark.parametrize("name", MUTATIONS)
def test_every_mutation_is_caught_with_default_options(name, monkeypatch):
    rep = run_mutation(name, monkeypatch)
    assert not rep.passed, f"not caught: {name}\n{rep.summary()}"
    worst = max(r.max_rel for r in rep.rows if not r.passed)
    assert worst > 100 * rep.tol, f"{name}: caught only by {worst:.1e}"


def test_the_unmutated_problems_pass():
    for kind, keys, n, *_ in MUTATIONS.values():
        rep = check_model(make_problem(kind, keys, n=n), Options())
        assert rep.passed, (kind, keys, rep.summary())


def test_at_least_twelve_mutations():
    assert len(MUTATIONS) >= 12


if __name__ == "__main__":  # the closing note's table
    print("| mutation | failing params | entries over tol | worst max rel err |")
    print("|---|---|---|---|")
    for name in MUTATIONS:
        with pytest.MonkeyPatch.context() as mp:
            rep = run_mutation(name, mp)
        bad = [r for r in rep.rows if not r.passed]
        print(f"| {name} | {', '.join(r.name for r in bad) or 'NONE'} | "
              f"{sum(r.over for r in bad)}/{sum(r.checked for r in bad)} | "
              f"{max((r.max_rel for r in bad), default=0):.1e} |")
