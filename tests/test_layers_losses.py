"""Gradient and closed-form checks of the fully connected layers and the losses (float64)."""

import numpy as np
import pytest

from dl2424.gradcheck import max_rel_error, numerical_grad
from dl2424.nn import layers, losses

SHAPES = [(2, 3, 4), (5, 7, 3), (1, 20, 10)]


@pytest.mark.parametrize("n,d,m", SHAPES)
def test_affine_gradients(n, d, m):
    rng = np.random.default_rng(n * 100 + d)
    x, W, b = rng.standard_normal((n, d)), rng.standard_normal((d, m)), rng.standard_normal(m)
    dout = rng.standard_normal((n, m))
    out, cache = layers.affine_forward(x, W, b)
    np.testing.assert_allclose(out, x @ W + b)
    dx, dW, db = layers.affine_backward(dout, cache)
    for arr, analytic in ((x, dx), (W, dW), (b, db)):
        out = lambda: float(np.sum(layers.affine_forward(x, W, b)[0] * dout))  # noqa: E731
        num = numerical_grad(out, arr)
        assert max_rel_error(analytic, num) < 1e-7
    dW2, db2 = layers.affine_backward_params(dout, cache)
    np.testing.assert_array_equal(dW2, dW)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("name,fwd,bwd", [
    ("relu", lambda x: layers.relu_forward(x), layers.relu_backward),
    ("leaky", lambda x: layers.leaky_relu_forward(x, 0.02), layers.leaky_relu_backward),
])
def test_activation_gradients(name, fwd, bwd):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 9))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    dout = rng.standard_normal(x.shape)
    out, cache = fwd(x)
    num = numerical_grad(lambda: float(np.sum(fwd(x)[0] * dout)), x)
    assert max_rel_error(bwd(dout, cache), num) < 1e-7


def test_leaky_relu_values():
    out, _ = layers.leaky_relu_forward(np.array([-2.0, 0.0, 3.0]), 0.02)
    np.testing.assert_allclose(out, [-0.04, 0.0, 3.0])


def test_dropout_is_inverted_and_seeded():
    x = np.ones((2000, 50))
    out1, mask1 = layers.dropout_forward(x, 0.8, np.random.default_rng(3))
    out2, _ = layers.dropout_forward(x, 0.8, np.random.default_rng(3))
    np.testing.assert_array_equal(out1, out2)
    assert abs(out1.mean() - 1.0) < 0.01  # expectation preserved by the 1/keep scale
    assert abs((mask1 > 0).mean() - 0.8) < 0.01
    dout = np.random.default_rng(4).standard_normal(x.shape)
    np.testing.assert_array_equal(layers.dropout_backward(dout, mask1), dout * mask1)


def _targets(kind, rng, n, K):
    y = rng.integers(0, K, n)
    if kind == "hard":
        return y
    T = rng.random((n, K))
    return T / T.sum(axis=1, keepdims=True)


LOSS_CASES = [(losses.softmax_cross_entropy, "hard"), (losses.softmax_cross_entropy, "soft"),
               (losses.binary_cross_entropy, "hard"), (losses.binary_cross_entropy, "soft"),
               (losses.multiclass_svm, "hard")]  # the hinge takes hard labels only


@pytest.mark.parametrize("fn,kind", LOSS_CASES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n,K", [(1, 3), (4, 10), (9, 5)])
def test_loss_gradients(fn, kind, weighted, n, K):
    rng = np.random.default_rng(n * 10 + K)
    s = rng.standard_normal((n, K))
    target = _targets(kind, rng, n, K)
    w = rng.random(n) + 0.5 if weighted else None
    _, ds = fn(s, target, w)
    num = numerical_grad(lambda: fn(s, target, w)[0], s)
    # The hinge has kinks; random scores put no margin within h of zero.
    assert max_rel_error(ds, num) < 1e-6


def test_softmax_ce_matches_definition_and_is_stable():
    rng = np.random.default_rng(0)
    s, y = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    loss, _ = losses.softmax_cross_entropy(s, y)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(5), y])))
    big, _ = losses.softmax_cross_entropy(s + 1e4, y)  # shift-invariant, no overflow
    assert big == pytest.approx(loss)
    np.testing.assert_allclose(losses.softmax(s).sum(axis=1), 1.0)


def test_svm_matches_definition():
    s = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    y = np.array([0, 1, 2])
    # CS231n lecture example: per-example hinge losses 2.9, 0, 12.9.
    loss, _ = losses.multiclass_svm(s, y)
    assert loss == pytest.approx((2.9 + 0 + 12.9) / 3)


def test_bce_matches_definition():
    rng = np.random.default_rng(2)
    s, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    p = 1 / (1 + np.exp(-s))
    Y = np.eye(5)[y]
    expected = np.mean(-np.mean((1 - Y) * np.log(1 - p) + Y * np.log(p), axis=1))
    assert losses.binary_cross_entropy(s, y)[0] == pytest.approx(expected)
    _, ds = losses.binary_cross_entropy(s, y)
    np.testing.assert_allclose(ds, (p - Y) / (5 * 6))  # (p - y)/K per example, mean over n


def test_weighted_loss_is_weighted_mean():
    rng = np.random.default_rng(5)
    s, y = rng.standard_normal((4, 3)), np.array([0, 1, 2, 0])
    w = np.array([2.0, 0.5, 1.0, 0.5])
    per = [losses.softmax_cross_entropy(s[i:i + 1], y[i:i + 1])[0] for i in range(4)]
    assert losses.softmax_cross_entropy(s, y, w)[0] == pytest.approx(np.dot(w, per) / 4)


def test_class_probabilities_of_each_loss():
    from dl2424.registry import LOSSES

    s = np.random.default_rng(7).standard_normal((4, 5)) * 3
    soft = LOSSES["softmax_ce"].factory(None).proba(s)
    np.testing.assert_allclose(soft, np.exp(s) / np.exp(s).sum(axis=1, keepdims=True))
    # BCE reads each class on its own: p_k = sigma(s_k), not normalised across classes.
    np.testing.assert_allclose(LOSSES["bce"].factory(None).proba(s), 1 / (1 + np.exp(-s)))
