"""Batch normalisation: gradients with coupled batch statistics, closed-form output
statistics (UvA A1 exercise 3 tests) and the moving averages (DD2424 A3 eq. 38-39)."""

import numpy as np
import pytest

from dl2424.gradcheck import max_rel_error, numerical_grad
from dl2424.nn import batchnorm as bn

EPS = 1e-5


def _fresh_state(m, dtype=np.float64):
    return bn.layer_state(bn.init_state("bn", m, dtype), "bn")


def _gradcheck(x, gamma, beta, train, seed):
    """Max relative error of (dx, dgamma, dbeta) against centred differences of sum(out * R)."""
    state = _fresh_state(x.shape[1])
    if not train:  # give evaluation mode non-trivial moving averages
        bn.batchnorm_forward(x * 1.5 + 0.3, gamma, beta, state, train=True)
    R = np.random.default_rng(seed).standard_normal(x.shape)

    def f():
        return float(np.sum(bn.batchnorm_forward(x, gamma, beta, state, train)[0] * R))

    _, cache = bn.batchnorm_forward(x, gamma, beta, state, train)
    grads = bn.batchnorm_backward(R, cache)
    return [max_rel_error(g, numerical_grad(f, a)) for g, a in zip(grads, (x, gamma, beta),
                                                                strict=True)]


# n = 2 is left out on purpose: x-hat is then +-1 whatever x is, so dx is O(eps) and the
# finite differences measure rounding noise rather than the gradient.
@pytest.mark.parametrize("n,m", [(3, 3), (5, 4), (17, 9), (64, 2)])
def test_gradients_train_mode(n, m):
    rng = np.random.default_rng(n * 31 + m)
    x = 2 * rng.standard_normal((n, m)) + 10
    gamma, beta = rng.standard_normal(m), rng.standard_normal(m)
    assert max(_gradcheck(x, gamma, beta, True, n)) < 1e-6


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (3, 2, 5, 3), (1, 4, 3, 3)])
def test_gradients_spatial_train_mode(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 3 - 1
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    assert max(_gradcheck(x, gamma, beta, True, 7)) < 1e-6


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4, 4)])
def test_gradients_eval_mode(shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    assert max(_gradcheck(x, gamma, beta, False, 4)) < 1e-6


def test_backward_is_the_closed_form():
    """dx matches the UvA formula written out independently of the implementation."""
    rng = np.random.default_rng(5)
    n, m = 11, 4
    x, gamma = rng.standard_normal((n, m)), rng.standard_normal(m)
    dy = rng.standard_normal((n, m))
    out, cache = bn.batchnorm_forward(x, gamma, np.zeros(m), _fresh_state(m), train=True)
    dx, dgamma, dbeta = bn.batchnorm_backward(dy, cache)
    mu, var = x.mean(0), x.var(0)
    xhat = (x - mu) / np.sqrt(var + EPS)
    expect = gamma / (n * np.sqrt(var + EPS)) * (
        n * dy - dy.sum(0) - xhat * (dy * xhat).sum(0))
    np.testing.assert_allclose(dx, expect, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dgamma, (dy * xhat).sum(0), rtol=1e-12)
    np.testing.assert_allclose(dbeta, dy.sum(0), rtol=1e-12)


@pytest.mark.parametrize("shape", [(50, 7), (8, 5, 6, 6)])
def test_train_output_is_standardised(shape):
    rng = np.random.default_rng(6)
    x = 2 * rng.standard_normal(shape) + 10
    C = shape[1]
    out, _ = bn.batchnorm_forward(x, np.ones(C), np.zeros(C), _fresh_state(C), train=True)
    axes = (0, 2, 3) if len(shape) == 4 else 0
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-12)
    # biased variance: x-hat has variance var / (var + eps), just under 1
    np.testing.assert_allclose(out.var(axis=axes), 1, atol=1e-5)


@pytest.mark.parametrize("trial", range(5))
def test_uva_gamma_beta(trial):
    """UvA A1 test of the manual BN: gamma = sqrt(10 k), beta = 100 k."""
    rng = np.random.default_rng(42 + trial)
    n, m = int(rng.integers(64, 256)), int(rng.integers(4, 10))
    x = 2 * rng.standard_normal((n, m)) + 10
    k = np.arange(m)
    gamma, beta = np.sqrt(10 * k), 100.0 * k
    out, _ = bn.batchnorm_forward(x, gamma, beta, _fresh_state(m), train=True)
    np.testing.assert_allclose(out.mean(0), beta, atol=1e-5)
    var = x.var(0)
    # exactly gamma^2 var / (var + eps); that is 10 k up to eps / var ~ 3e-6 relative
    np.testing.assert_allclose(out.var(0), 10 * k * var / (var + EPS), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out.var(0), 10 * k, rtol=1e-4, atol=1e-10)


def test_moving_averages_and_eval_mode():
    rng = np.random.default_rng(8)
    m, alpha = 3, 0.9
    x1 = rng.standard_normal((20, m)) * 2 + 5
    x2 = rng.standard_normal((30, m)) * 0.5 - 1
    gamma, beta = rng.standard_normal(m), rng.standard_normal(m)
    flat = bn.init_state("bn1", m, np.float64)
    state = bn.layer_state(flat, "bn1")
    bn.batchnorm_forward(x1, gamma, beta, state, train=True, alpha=alpha)
    bn.batchnorm_forward(x2, gamma, beta, state, train=True, alpha=alpha)
    # by hand: the first batch seeds the averages, the second is blended in with weight 0.1
    mean = 0.9 * x1.mean(0) + 0.1 * x2.mean(0)
    var = 0.9 * np.var(x1, axis=0) + 0.1 * np.var(x2, axis=0)  # biased (ddof=0)
    np.testing.assert_allclose(flat["bn1.mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(flat["bn1.var"], var, rtol=1e-12)
    assert int(flat["bn1.count"]) == 2
    # evaluation mode uses them and leaves them alone; one example gives the same answer
    # as inside a batch, since nothing couples the rows
    x3 = rng.standard_normal((4, m))
    out, _ = bn.batchnorm_forward(x3, gamma, beta, state, train=False)
    np.testing.assert_allclose(out, gamma * (x3 - mean) / np.sqrt(var + EPS) + beta,
                               rtol=1e-12)
    one, _ = bn.batchnorm_forward(x3[:1], gamma, beta, state, train=False)
    np.testing.assert_allclose(one, out[:1], rtol=1e-12)
    np.testing.assert_allclose(flat["bn1.mean"], mean, rtol=1e-12)
    assert int(flat["bn1.count"]) == 2


def test_eval_before_training_is_identity_normalisation():
    x = np.random.default_rng(9).standard_normal((5, 4))
    out, _ = bn.batchnorm_forward(x, np.full(4, 2.0), np.full(4, 1.0), _fresh_state(4), False)
    np.testing.assert_allclose(out, 2 * x / np.sqrt(1 + EPS) + 1, rtol=1e-12)


def test_spatial_moving_averages_are_per_channel():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 2, 4, 5)) + np.array([1.0, -4.0])[None, :, None, None]
    state = _fresh_state(2)
    bn.batchnorm_forward(x, np.ones(2), np.zeros(2), state, train=True)
    np.testing.assert_allclose(state["mean"], x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(state["var"], x.var(axis=(0, 2, 3)), rtol=1e-12)


def test_float32_stays_float32():
    x = np.random.default_rng(11).standard_normal((8, 3, 4, 4)).astype(np.float32)
    g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    state = _fresh_state(3, np.float32)
    out, cache = bn.batchnorm_forward(x, g, b, state, train=True)
    grads = bn.batchnorm_backward(np.ones_like(out), cache)
    assert out.dtype == np.float32 and state["mean"].dtype == np.float32
    assert all(a.dtype == np.float32 for a in grads)


# rows: (part sizes): a wide view with r > 1 (rows divisible by powers of two), r = 1 (odd
# part), and channel counts above WIDE_ROW / 2 (no widening at all).
@pytest.mark.parametrize("parts,F,relu,train", [
    ((64, 96), 16, True, True), ((21, 35), 8, False, True), ((48, 48), 300, True, True),
    ((64, 96), 16, True, False), ((40, 24), 4, False, False)])
def test_rows_in_parts_match_the_reference(parts, F, relu, train):
    """rows_forward/rows_backward (channels-last, in parts, per-channel vectors widened)
    give batchnorm_forward/backward (then ReLU) of the same rows."""
    rng = np.random.default_rng(F)
    N = sum(parts)
    z = rng.standard_normal((N, F)) * 2 + 0.5
    gamma, beta = rng.standard_normal(F), rng.standard_normal(F)
    dy = rng.standard_normal((N, F))
    cuts = [slice(0, parts[0]), slice(parts[0], N)]

    def run(fn, items):
        return [fn(i) for i in items]

    ref_state, state = _fresh_state(F), _fresh_state(F)
    if not train:  # moving averages away from (0, 1)
        mean, var = rng.standard_normal(F), rng.random(F) + 0.5
        for s in (ref_state, state):
            s["mean"][...], s["var"][...] = mean, var
    ref, ref_cache = bn.batchnorm_forward(z, gamma, beta, ref_state, train)
    if relu:
        ref_mask = ref > 0
        ref = ref * ref_mask
    # statistics from the parts as they come (one block each), or from blocks of rows of
    # unequal sizes, as the conv layer gives them
    blocks = [[bn.block_stats(z[c][s : s + 13]) for s in range(0, c.stop - c.start, 13)]
              for c in cuts]
    y, shift, cache = bn.rows_forward(z.copy(), gamma, beta, state, train, EPS, 0.9, relu,
                                      np.empty_like(z), cuts, run, blocks if F == 16 else None)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    for k in ("mean", "var"):
        np.testing.assert_allclose(state[k], ref_state[k], rtol=1e-12)

    dx_ref, dgamma_ref, dbeta_ref = bn.batchnorm_backward(dy * ref_mask if relu else dy,
                                                         ref_cache)
    got = dy.copy()
    dgamma, dbeta, seen = bn.rows_backward(got, cache, cuts, run, lambda i, g: g.shape[0])
    assert seen == list(parts)
    np.testing.assert_allclose(got, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma, dgamma_ref, rtol=1e-10)
    np.testing.assert_allclose(dbeta, dbeta_ref, rtol=1e-10)


def test_merged_block_statistics_are_the_batch_statistics():
    """merge_stats of blocks of any sizes gives the batch mean and biased variance: exactly
    in float64, and in float32 also for a channel whose mean is 30,000 standard deviations
    from zero, where the mean of squares minus the squared mean is useless."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((1000, 3)) * [1, 0.01, 5] + [0, 300, -2]
    cuts = [0, 1, 7, 400, 401, 1000]
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-3)):
        x = z.astype(dtype)
        stats = [bn.block_stats(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        mean, var = bn.merge_stats(stats)
        x64 = x.astype(np.float64)
        np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=rtol)
        np.testing.assert_allclose(var, x64.var(axis=0), rtol=rtol)
    naive = (x * x).mean(axis=0) - x.mean(axis=0) ** 2
    assert abs(naive[1] / x64.var(axis=0)[1] - 1) > 0.1


@pytest.mark.parametrize("positive", [True, False])
def test_deferred_scale_shift_and_relu_give_the_same_output(positive):
    """With defer, rows_forward leaves the shift and the ReLU to the caller (a max-pool),
    and the scale too when every scale is positive (then it makes no pass over z): applying
    them afterwards gives the undeferred output."""
    rng = np.random.default_rng(8)
    z = rng.standard_normal((64, 16)) + 0.3
    gamma, beta = rng.standard_normal(16), rng.standard_normal(16)
    if positive:
        gamma = np.abs(gamma) + 0.1
    cuts = [slice(0, 24), slice(24, 64)]

    def run(fn, items):
        return [fn(i) for i in items]

    y, deferred, _ = bn.rows_forward(z.copy(), gamma, beta, _fresh_state(16), True, EPS, 0.9,
                                     True, np.empty_like(z), cuts, run)
    assert deferred is None
    h, (scale, shift), _ = bn.rows_forward(z.copy(), gamma, beta, _fresh_state(16), True, EPS,
                                           0.9, True, np.empty_like(z), cuts, run, defer=True)
    assert (scale is not None) == positive
    if positive:
        np.testing.assert_array_equal(h, z)  # left as it is
    bn.scale_shift(h, scale, shift)
    np.testing.assert_allclose(np.maximum(h, 0), y, rtol=1e-12, atol=1e-12)
    assert (y == 0).any() and (y > 0).any()
