"""Update rules against their textbook formulas; schedules against the hand-out's
equations; samplers' statistics."""

import numpy as np
import pytest

from dl2424 import optim, samplers, schedules
from dl2424.nn import parallel


def _run(opt, w0, grads, lrs):
    params = {"w": w0.copy()}
    for g, lr in zip(grads, lrs, strict=True):
        opt.step(params, {"w": g}, lr)
    return params["w"]


@pytest.fixture
def seq():
    rng = np.random.default_rng(0)
    return rng.standard_normal(5), [rng.standard_normal(5) for _ in range(6)], \
        [0.1, 0.05, 0.2, 0.1, 0.01, 0.3]


def test_sgd(seq):
    w0, gs, lrs = seq
    expected = w0 - sum(lr * g for g, lr in zip(gs, lrs, strict=True))
    np.testing.assert_allclose(_run(optim.SGD(optim.SGDParams()), w0, gs, lrs), expected)


def test_momentum_matches_handout_form(seq):
    w0, gs, lrs = seq
    w, v = w0.copy(), np.zeros(5)
    for g, lr in zip(gs, lrs, strict=True):  # v_t = rho v_{t-1} + eta grad; w -= v_t
        v = 0.9 * v + lr * g
        w = w - v
    out = _run(optim.Momentum(optim.MomentumParams(rho=0.9)), w0, gs, lrs)
    np.testing.assert_allclose(out, w)


def test_nesterov_is_lookahead_gradient(seq):
    # Sutskever's form: v' = rho v - lr grad(w + rho v); w' = w + v'. Our rule keeps the
    # look-ahead point x = w + rho v as the parameter; check that equivalence on a quadratic.
    A = np.diag([1.0, 2.0, 3.0, 0.5, 4.0])
    grad = lambda x: A @ x  # noqa: E731
    w0 = np.ones(5)
    w, v = w0.copy(), np.zeros(5)
    params, opt = {"w": w0.copy()}, optim.Nesterov(optim.MomentumParams(rho=0.9))
    for _ in range(10):
        v = 0.9 * v - 0.05 * grad(w + 0.9 * v)
        w = w + v
        opt.step(params, {"w": grad(params["w"])}, 0.05)
        np.testing.assert_allclose(params["w"], w + 0.9 * v)


def test_adam_matches_algorithm_1(seq):
    w0, gs, lrs = seq
    b1, b2, eps = 0.9, 0.999, 1e-8
    w, m, v = w0.copy(), np.zeros(5), np.zeros(5)
    for t, (g, lr) in enumerate(zip(gs, lrs, strict=True), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat, vhat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * mhat / (np.sqrt(vhat) + eps)
    out = _run(optim.Adam(optim.AdamParams()), w0, gs, lrs)
    # eps enters slightly differently (scaled by the bias correction), hence rtol.
    np.testing.assert_allclose(out, w, rtol=1e-6)


def test_float32_params_stay_float32():
    params = {"w": np.ones(3, np.float32)}
    for opt in (optim.SGD(optim.SGDParams()), optim.Adam(optim.AdamParams()),
                optim.Momentum(optim.MomentumParams()), optim.Nesterov(optim.MomentumParams())):
        opt.step(params, {"w": np.ones(3, np.float32)}, 0.1)
        assert params["w"].dtype == np.float32


def _sched(name, p, base_lr=None, spe=10, total=100):
    entry = schedules.SCHEDULES[name]
    return entry.factory(p, base_lr=base_lr, steps_per_epoch=spe, total_steps=total)


def test_cyclic_follows_handout_equations():
    p = schedules.CyclicParams(eta_min=1e-5, eta_max=1e-1, n_s=500)
    lr = _sched("cyclic", p)
    lo, hi, n_s = 1e-5, 1e-1, 500
    for t in [0, 1, 250, 499, 500, 501, 750, 999, 1000, 1500, 2250, 2999]:
        l = (t // (2 * n_s))
        if 2 * l * n_s <= t <= (2 * l + 1) * n_s:  # A2 eq. (14)
            expected = lo + (t - 2 * l * n_s) / n_s * (hi - lo)
        else:  # eq. (15)
            expected = hi - (t - (2 * l + 1) * n_s) / n_s * (hi - lo)
        assert lr(t) == pytest.approx(expected)
    assert lr.cycle_steps(3) == 3000


def test_cyclic_doubling_cycles():
    p = schedules.CyclicParams(eta_min=0.0001, eta_max=0.1, n_s=10, double_every_cycle=True)
    lr = _sched("cyclic", p)
    assert lr.cycle_steps(3) == 20 + 40 + 80
    assert lr(20) == pytest.approx(0.0001)  # second cycle starts at the bottom
    assert lr(40) == pytest.approx(0.1)  # and peaks after its doubled half-cycle of 20


def test_step_decay_per_epoch():
    lr = _sched("step", schedules.StepParams(gamma=0.5, every_epochs=2), base_lr=0.1, spe=10)
    assert [lr(t) for t in (0, 19, 20, 39, 40)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_linear_and_range_test_endpoints():
    lin = _sched("linear", schedules.LinearParams(end_factor=0.1), base_lr=1.0, total=11)
    assert lin(0) == pytest.approx(1.0) and lin(10) == pytest.approx(0.1)
    rt = _sched("range_test", schedules.RangeParams(lr_min=1e-4, lr_max=1.0), total=5)
    np.testing.assert_allclose([rt(t) for t in range(5)], np.logspace(-4, 0, 5))


def test_cyclic_rejects_inverted_bounds():
    with pytest.raises(ValueError, match="eta_min"):
        schedules.CyclicParams(eta_min=0.1, eta_max=0.01)


def test_shuffle_is_a_permutation_per_epoch():
    y = np.arange(103) % 4
    s = samplers.Shuffle(y, 10)
    assert s.steps_per_epoch == 10
    o1 = s.epoch_order(np.random.default_rng(1))
    o2 = s.epoch_order(np.random.default_rng(2))
    assert len(o1) == 100 and len(set(o1)) == 100 and not np.array_equal(o1, o2)
    np.testing.assert_array_equal(o1, s.epoch_order(np.random.default_rng(1)))


def test_balanced_sampler_draws_equal_classes():
    y = np.repeat(np.arange(4), [500, 40, 100, 7])
    s = samplers.Balanced(y, 4)
    assert s.epoch_size == 28 and s.steps_per_epoch == 7
    seen = np.zeros(len(y), int)
    for e in range(300):
        order = s.epoch_order(np.random.default_rng([e]))
        assert np.bincount(y[order], minlength=4).tolist() == [7, 7, 7, 7]
        assert len(set(order)) == len(order)  # no repeats inside an epoch
        seen[order] += 1
    # Draws within the big class are uniform: each example's count over 300 epochs is
    # Binomial(300, 7/500), mean 4.2 and standard deviation about 2.03.
    big = seen[:500]
    assert big.mean() == pytest.approx(4.2)
    assert 1.7 < big.std() < 2.4
    assert (seen[640:647] == 300).all()  # the smallest class is drawn whole every epoch


def test_sequential_order():
    s = samplers.Sequential(np.zeros(25, int), 10)
    np.testing.assert_array_equal(s.epoch_order(None), np.arange(20))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_adam_blocks_do_not_change_the_numbers(n_threads):
    """Adam updates big arrays block by block, the blocks split over the threads; neither
    the block size nor the thread count may change any bit."""
    rng = np.random.default_rng(3)
    w0 = {"F": rng.standard_normal((5, 3, 7)).astype(np.float32),
          "b": rng.standard_normal(4).astype(np.float32)}
    results = []
    try:
        for block, threads in ((1 << 20, 1), (7, n_threads), (16, n_threads)):
            parallel.set_threads(threads)  # 7: not a divisor of 105; 1 << 20: one block
            opt, params = optim.Adam(optim.AdamParams()), {k: v.copy() for k, v in w0.items()}
            opt.BLOCK = block
            for t in range(3):
                g = {k: np.random.default_rng(t).standard_normal(v.shape).astype(np.float32)
                     for k, v in w0.items()}
                opt.step(params, g, 0.01)
            results.append(params)
    finally:
        parallel.set_threads(None)
    for other in results[1:]:
        for k in w0:
            np.testing.assert_array_equal(other[k], results[0][k])
    assert not np.array_equal(results[0]["F"], w0["F"])
