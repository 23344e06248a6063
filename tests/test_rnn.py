"""Recurrent layers and models: float64 gradient checks, a per-step reference, torch autograd."""

from pathlib import Path

import numpy as np
import pytest

from dl2424.data.bundle import DataInfo
from dl2424.gradcheck import Options, Problem, check_model, max_rel_error, numerical_grad
from dl2424.models.rnn import LanguageModel, LanguageModelParams, RecurrentParams, RNNClassifier
from dl2424.nn import rnn as R

B, T, K, M = 3, 6, 7, 5


def lm_info(K=K, n_inputs=None):
    return DataInfo((T,), [], {"task": "lm", "vocab": K, "n_inputs": n_inputs or K,
                               "mode": "book"})


def random_params(cell, rng, scale=0.5):
    n = M * (4 if cell == "lstm" else 1)
    return {"U": rng.standard_normal((K, n)) * scale, "W": rng.standard_normal((M, n)) * scale,
            "b": rng.standard_normal(n) * 0.1, "V": rng.standard_normal((M, K)) * scale,
            "c": rng.standard_normal(K) * 0.1, "h0": rng.standard_normal((B, M)) * scale,
            "c0": rng.standard_normal((B, M)) * scale}


def layer_loss(P, cell, x, y, mask, reduction, grads=False):
    """embed -> cell -> output -> loss, with every layer's backward when grads."""
    A, ec = R.embed_forward(x, P["U"], P["b"])
    if cell == "rnn":
        H, cc = R.rnn_forward(A, P["h0"], P["W"])
    else:
        H, _, cc = R.lstm_forward(A, P["h0"], P["c0"], P["W"])
    Hf = H.reshape(-1, M)
    O = Hf @ P["V"] + P["c"]
    loss, dO, _ = R.seq_softmax_loss(O, y.T.reshape(-1), B,
                                     None if mask is None else mask.T.reshape(-1), reduction)
    if not grads:
        return loss
    g = {"V": Hf.T @ dO, "c": dO.sum(0)}
    dH = (dO @ P["V"].T).reshape(T, B, M)
    if cell == "rnn":
        dA, g["W"], g["h0"] = R.rnn_backward(dH, cc)
    else:
        dA, g["W"], g["h0"], g["c0"] = R.lstm_backward(dH, cc)
    g["U"], g["b"] = R.embed_backward(dA, ec)
    return g


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("reduction,masked", [("sum", False), ("mean", True)])
def test_layer_gradients_float64(cell, reduction, masked):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, K, (B, T)), rng.integers(0, K, (B, T))
    mask = (np.arange(T)[None, :] < np.array([[T], [3], [5]])) if masked else None
    P = random_params(cell, rng)
    g = layer_loss(P, cell, x, y, mask, reduction, grads=True)
    assert set(g) == {"U", "W", "b", "V", "c", "h0"} | ({"c0"} if cell == "lstm" else set())
    for k, ana in g.items():
        num = numerical_grad(lambda: layer_loss(P, cell, x, y, mask, reduction), P[k], 1e-5)
        assert max_rel_error(ana, num, atol=1e-9) < 1e-6, k
        assert np.abs(ana).max() > 1e-3, k  # a real gradient, not zeros compared with zeros


def reference_rnn_loss(x, y, h0, U, W, b, V, c):
    """The hand-out's column form, one step at a time: a = W h + U x + b, ... summed."""
    h, loss = h0[:, None], 0.0
    for t in range(len(x)):
        xt = np.zeros((U.shape[1], 1))
        xt[x[t]] = 1
        h = np.tanh(W @ h + U @ xt + b[:, None])
        o = V @ h + c[:, None]
        p = np.exp(o - o.max()) / np.exp(o - o.max()).sum()
        loss -= np.log(p[y[t], 0])
    return loss, h[:, 0]


def test_vanilla_rnn_matches_the_handout_equations_per_sequence():
    rng = np.random.default_rng(1)
    P = random_params("rnn", rng)
    x, y = rng.integers(0, K, (B, T)), rng.integers(0, K, (B, T))
    A, _ = R.embed_forward(x, P["U"], P["b"])
    H, _ = R.rnn_forward(A, P["h0"], P["W"])
    O = H.reshape(-1, M) @ P["V"] + P["c"]
    loss, _, _ = R.seq_softmax_loss(O, y.T.reshape(-1), B)
    refs = [reference_rnn_loss(x[i], y[i], P["h0"][i], P["U"].T, P["W"].T, P["b"], P["V"].T,
                               P["c"]) for i in range(B)]
    assert loss == pytest.approx(np.mean([r[0] for r in refs]), rel=1e-12)
    np.testing.assert_allclose(H[-1], np.stack([r[1] for r in refs]), rtol=1e-12)


def test_losses_sum_and_mean_scale_as_the_handouts():
    rng = np.random.default_rng(2)
    O, y = rng.standard_normal((T, K)), rng.integers(0, K, T)
    s, _, P = R.seq_softmax_loss(O, y, 1, None, "sum")
    m, _, _ = R.seq_softmax_loss(O, y, 1, None, "mean")
    assert s == pytest.approx(-np.log(P[np.arange(T), y]).sum())
    assert m == pytest.approx(s / T)
    uniform, _, _ = R.seq_softmax_loss(np.zeros((25, 80)), np.zeros(25, int), 1)
    assert uniform == pytest.approx(25 * np.log(80))  # the hand-out's ~109.5 at iter 1


def lm(cell, m=M, reduction="sum", K=K):
    p = LanguageModelParams(cell=cell, hidden=m, reduction=reduction,
                            init={"type": "gaussian", "std": 0.3})
    return LanguageModel(p, lm_info(K), np.float64, np.random.default_rng(3))


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_language_model_gradcheck_handout_setting(cell):
    """25 characters, h0 = 0, m = 5 (hand-out), every parameter entry, centred h = 1e-5."""
    rng = np.random.default_rng(4)
    seq = rng.integers(0, K, 26)
    model = lm(cell)
    report = check_model(Problem(model, seq[None, :25], seq[None, 1:]), Options(h=1e-5))
    assert [c.name for c in report.rows] == ["U", "W", "b", "V", "c"]
    assert all(c.passed for c in report.rows) and report.passed, report.rows


def test_batched_pieces_equal_separate_ones_and_carry_the_state():
    rng = np.random.default_rng(5)
    model = lm("lstm")
    x, y = rng.integers(0, K, (B, 2 * T)), rng.integers(0, K, (B, 2 * T))
    state = model.zero_state(B)
    l1, g1, state = model.seq_loss(x[:, :T], y[:, :T], state)
    l2, g2, _ = model.seq_loss(x[:, T:], y[:, T:], state)
    for i in range(B):
        s1 = model.zero_state(1)
        a, _, s1 = model.seq_loss(x[i:i + 1, :T], y[i:i + 1, :T], s1)
        b, _, _ = model.seq_loss(x[i:i + 1, T:], y[i:i + 1, T:], s1)
        if i == 0:
            parts = [a, b]
        else:
            parts = [parts[0] + a, parts[1] + b]
    assert l1 == pytest.approx(parts[0] / B) and l2 == pytest.approx(parts[1] / B)
    # The carried state matters: the second piece from a zero state gives another loss.
    l2_zero, _, _ = model.seq_loss(x[:, T:], y[:, T:], model.zero_state(B))
    assert abs(l2_zero - l2) > 1e-6


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_classifier_reads_up_to_the_last_character(cell):
    d, n_len = 6, 5
    info = DataInfo((n_len,), ["a", "b", "c"], {"vocab": d})
    p = RecurrentParams(cell=cell, hidden=4, init={"type": "gaussian", "std": 0.5})
    model = RNNClassifier(p, info, np.float64, np.random.default_rng(6))
    X = np.array([[0, 1, 2, d, d], [3, 4, 5, 1, 0], [2, d, d, d, d]])
    y = np.array([0, 2, 1])
    report = check_model(Problem(model, X, y), Options(h=1e-5))
    assert all(c.passed for c in report.rows), report.rows
    # Padding after the name changes nothing; a different character before it does.
    s = model.scores(X)
    s_short, _ = model.forward(X[:, :3], train=False)
    np.testing.assert_allclose(s[[0, 2]], s_short[[0, 2]], rtol=1e-12)
    X2 = X.copy()
    X2[0, 0] = 5
    assert not np.allclose(model.scores(X2)[0], s[0])


def test_inverse_cdf_and_nucleus_sampling():
    p = np.array([0.1, 0.5, 0.3, 0.1])
    # The first index whose cumulative probability exceeds u.
    assert [R.sample_next(p, u) for u in (0.05, 0.1, 0.59, 0.61, 0.95)] == [0, 1, 1, 2, 3]
    # top-p 0.5 keeps only the most probable character; 0.8 keeps the two largest.
    assert {R.sample_next(p, u, 0.5) for u in np.linspace(0, 0.999, 50)} == {1}
    assert {R.sample_next(p, u, 0.8) for u in np.linspace(0, 0.999, 50)} == {1, 2}
    # Within the nucleus, probabilities are renormalised: 0.5/0.8 of the draws pick index 1.
    draws = [R.sample_next(p, u, 0.8) for u in np.linspace(0, 0.999, 1000)]
    assert np.mean(np.array(draws) == 1) == pytest.approx(0.625, abs=0.002)


# ---------------------------------------------------------------------------- torch

def torch_lm_loss(torch, cell, P, x, y):
    """The same model built from torch.nn.RNN / nn.LSTM and autograd (gate order i, f, g, o
    in torch; i, f, o, g here)."""
    m = P["W"].shape[0]
    net = (torch.nn.RNN if cell == "rnn" else torch.nn.LSTM)(K, m, batch_first=True,
                                                             dtype=torch.float64)
    perm = (np.r_[0:2 * m, 3 * m:4 * m, 2 * m:3 * m] if cell == "lstm" else np.arange(m))
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.tensor(P["U"][:, perm].T))
        net.weight_hh_l0.copy_(torch.tensor(P["W"][:, perm].T))
        net.bias_ih_l0.copy_(torch.tensor(P["b"][perm]))
        net.bias_hh_l0.zero_()
    V = torch.tensor(P["V"], requires_grad=True)
    c = torch.tensor(P["c"], requires_grad=True)
    onehot = torch.nn.functional.one_hot(torch.tensor(x), K).double()
    H, _ = net(onehot)
    O = H @ V + c
    loss = torch.nn.functional.cross_entropy(O.reshape(-1, K), torch.tensor(y).reshape(-1),
                                             reduction="sum") / x.shape[0]
    loss.backward()
    g = {"U": net.weight_ih_l0.grad.numpy().T, "W": net.weight_hh_l0.grad.numpy().T,
         "b": net.bias_ih_l0.grad.numpy(), "V": V.grad.numpy(), "c": c.grad.numpy()}
    inv = np.argsort(perm)
    g = {k: (v[..., inv] if k in ("U", "W", "b") else v) for k, v in g.items()}
    return loss.item(), g


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_against_torch_autograd(cell):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    model = lm(cell, m=10)
    x, y = rng.integers(0, K, (2, 25)), rng.integers(0, K, (2, 25))
    loss, grads, _ = model.seq_loss(x, y, model.zero_state(2))
    t_loss, t_grads = torch_lm_loss(torch, cell, model.params, x, y)
    assert loss == pytest.approx(t_loss, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], t_grads[k], rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("name", ["adagrad", "rmsprop"])
def test_adagrad_and_rmsprop_follow_their_formulas(name):
    from dl2424.optim import OPTIMIZERS

    entry = OPTIMIZERS[name]
    opt = entry.factory(entry.params(lr=0.1, eps=1e-6))
    w = np.array([1.0, -2.0, 3.0])
    ref, m = w.copy(), np.zeros(3)
    for g in (np.array([0.5, -1.0, 2.0]), np.array([-0.3, 0.2, 1.0])):
        opt.step({"w": w}, {"w": g}, 0.1)
        m = m + g * g if name == "adagrad" else 0.9 * m + 0.1 * g * g
        ref -= 0.1 * g / np.sqrt(m + 1e-6)
        np.testing.assert_allclose(w, ref, rtol=1e-14)


def test_classifier_twin_agrees_with_torch(env, cell="lstm"):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from dl2424.cli import app

    config = Path(__file__).parent.parent / "configs" / "names_rnn.yaml"
    res = CliRunner().invoke(app, ["gradcheck", str(config), "--against", "torch",
                                   "--set", f"model.cell={cell}", "--set", "model.hidden=6"])
    assert res.exit_code == 0 and "agree with torch autograd" in res.output, res.output
