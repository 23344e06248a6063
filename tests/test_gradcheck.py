"""The gradient check itself: steps, the generic point, kinks, the verdict rule."""

import numpy as np
import pytest

from dl2424.gradcheck import Options, check_model, numerical_grad, step_for
from dl2424.gradcheck.point import degenerate, jitter_point
from dl2424.nn import kinks, layers

from .gradcheck_models import CHARCNN, CNN, MLP_BN, make_problem


def test_numerical_grad_full_and_sampled():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = np.array([0.5, -2.0])
    f = lambda: 0.5 * x @ A @ x  # noqa: E731
    np.testing.assert_allclose(numerical_grad(f, x), A @ x, rtol=1e-9)
    np.testing.assert_allclose(numerical_grad(f, x, 1e-5, "centred", [1]), (A @ x)[1:], rtol=1e-9)
    fwd = numerical_grad(f, x, 1e-6, "forward")
    np.testing.assert_allclose(fwd, A @ x, rtol=1e-5)
    assert not np.allclose(fwd, A @ x, rtol=1e-9, atol=0)  # forward differences are O(h)
    np.testing.assert_array_equal(x, [0.5, -2.0])  # restored


def test_step_follows_the_scale_of_small_parameters():
    rng = np.random.default_rng(0)
    assert step_for(rng.normal(0, 1e-4, 500)) == pytest.approx(1e-7, rel=0.1)
    assert step_for(rng.normal(0, 1.0, 500)) == 1e-5
    assert step_for(np.zeros(5)) == 1e-5


def test_jitter_moves_only_zeros_and_ties_and_is_seeded():
    w = np.array([0.0, 0.3, 1.0, 1.0, -0.2])
    np.testing.assert_array_equal(degenerate(w), [True, False, True, True, False])
    a, b = {"w": w.copy(), "v": np.ones(3)}, {"w": w.copy(), "v": np.ones(3)}
    moved = jitter_point(a, seed=4)
    jitter_point(b, seed=4)
    assert moved == {"w": 3, "v": 3}
    np.testing.assert_array_equal(a["w"], b["w"])
    np.testing.assert_array_equal(a["w"][[1, 4]], [0.3, -0.2])
    assert np.all(a["w"][[0, 2, 3]] != w[[0, 2, 3]]) and len(set(a["v"])) == 3
    assert np.abs(a["v"] - 1).max() < 0.1


def test_kink_recording_sees_a_relu_input_change_sides():
    x = np.array([1e-6, -2.0, 3.0])
    with kinks.recording() as up:
        layers.relu_forward(x + 1e-5)
    with kinks.recording() as down:
        layers.relu_forward(x - 1e-5)
    assert kinks.crossed(up, down) == {"relu"}
    with kinks.recording() as again:
        layers.relu_forward(x + 2e-5)
    assert kinks.crossed(up, again) == set()
    layers.relu_forward(x)  # outside a recording: nothing kept
    assert kinks._log is None


@pytest.mark.parametrize("kind, keys", [("mlp", MLP_BN), ("charcnn", CHARCNN), ("cnn", CNN)])
def test_correct_gradients_pass_with_default_options(kind, keys):
    rep = check_model(make_problem(kind, keys))
    assert rep.passed, rep.summary()
    assert all(r.checked > 0 and r.over == 0 for r in rep.rows)
    assert rep.jitter["moved"]  # biases and BN scales started at exact zeros/ones


def test_zero_biases_sit_on_the_relu_kink_and_are_rechecked_not_failed():
    """Issue 11: the surname ConvNet with bias: all-padding windows give exactly b = 0 at the
    ReLU. At the initial point the kink is crossed; it is counted and re-checked."""
    problem = make_problem("charcnn", CHARCNN)
    rep = check_model(problem, Options(at="init", max_entries=0))
    b1 = next(r for r in rep.rows if r.name == "b1")
    assert b1.kinks.get("relu", 0) > 0 and b1.rechecked == b1.checked and b1.excluded == 0
    assert rep.passed, rep.summary()
    assert "crossed a kink" in rep.summary()


def test_tiny_weights_under_batch_norm_need_a_scaled_step():
    """A3's N(0, 1e-4^2) init with BN: h = 1e-5 is not small next to the weights (fails);
    the per-parameter step passes."""
    keys = {"hidden": [8], "batchnorm": True, "init": {"type": "gaussian", "std": 1e-4}}
    fixed = check_model(make_problem("mlp", keys, n=4), Options(h=1e-5))
    assert not next(r for r in fixed.rows if r.name == "W1").passed
    auto = check_model(make_problem("mlp", keys, n=4))
    assert auto.passed and next(r for r in auto.rows if r.name == "W1").h < 1e-6


def test_a_one_percent_error_fails_and_is_counted():
    problem = make_problem("mlp", MLP_BN)
    real = problem.model.backward

    def wrong(dscores, cache):
        grads = real(dscores, cache)
        grads["W2"] = grads["W2"] * 1.01
        return grads

    problem.model.backward = wrong
    rep = check_model(problem)
    bad = {r.name: r for r in rep.rows}
    assert not rep.passed and not bad["W2"].passed and bad["W1"].passed
    assert bad["W2"].over > bad["W2"].checked / 2
    assert 1e-3 < bad["W2"].max_rel < 0.5


def test_a_model_whose_loss_adds_its_own_term_is_checked_through_loss():
    """cost() evaluates forward + loss_fn + penalty; a model whose `loss` adds more (here
    0.5 * sum(W1), with its gradient) is detected and checked through `loss` itself."""
    problem = make_problem("mlp", MLP_BN)
    model = problem.model
    real = model.loss

    def loss(X, target, weights=None, train=True, rng=None, with_penalty=True):
        value, pen, grads = real(X, target, weights, train, rng, with_penalty)
        grads["W1"] = grads["W1"] + 0.5
        return value + 0.5 * float(model.params["W1"].sum()), pen, grads

    model.loss = loss
    rep = check_model(problem)
    assert rep.passed and not problem.forward_only, rep.summary()


def test_rounding_noise_is_measured_and_deterministic():
    from dl2424.gradcheck.numeric import EPS64, noise_floor, rounding_noise
    from dl2424.rng import generator

    problem = make_problem("mlp", MLP_BN)
    J = problem.cost()
    a = rounding_noise(problem.cost, problem.model.params, generator(0, 4, 3))
    b = rounding_noise(problem.cost, problem.model.params, generator(0, 4, 3))
    assert a == b and EPS64 * abs(J) <= a < 1e-12
    assert noise_floor(a, 1e-5) == pytest.approx(max(2 * a, 8 * EPS64) / 1e-5)
