"""Recurrent models (DD2424 Assignment 4): a character-level language model over text and a
surname classifier that reads a name character by character.

`rnn` (language model): x_t -> h_t (vanilla RNN or LSTM cell) -> o_t = V h_t + c ->
softmax over the next character. Inputs are character indices; the text dataset may add
start tokens (one per class in line mode) that are inputs only, never predicted.
`rnn_classifier`: the same cell over a surname (the names dataset's index rows, padded with
d), then s = V h_last + c from the hidden state after the name's last character.
Parameters in row layout: U (n_in, n), W (m, n), b (n,), V (m, K), c (K,) with n = m for
the vanilla cell and 4m for the LSTM (gates i, f, o, g).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt

from ..data.bundle import DataInfo
from ..errors import UserError
from ..limits import Footprint
from ..nn import rnn as R
from ..nn.losses import softmax
from ..registry import INITS, MODELS, component
from .base import Model, ModelParams, make_init, make_loss


class RecurrentParams(ModelParams):
    cell: Literal["rnn", "lstm"] = Field("rnn", description="vanilla tanh RNN or LSTM")
    hidden: PositiveInt = Field(100, description="m, the hidden state size")
    init: component(INITS) = Field({"type": "gaussian", "std": 0.01},
                                   description="initializer of U and W (hand-out: N(0, .01²))")
    init_out: component(INITS) | None = Field(
        None, description="initializer of V; default: init (2026 hand-out: xavier)")
    forget_bias: float = Field(0.0, description="LSTM: initial bias of the forget gate")

    def footprint(self, info):
        """U, W, b, V, c; per example and time step the gates, h (and c), and the scores."""
        meta = info.meta
        n_in = meta.get("n_inputs", meta.get("vocab"))
        K = meta.get("vocab") if meta.get("task") == "lm" else info.n_classes
        if not isinstance(n_in, int) or not isinstance(K, int) or len(info.input_shape) != 1:
            return None
        m = self.hidden
        n = m * (4 if self.cell == "lstm" else 1)
        T = int(info.input_shape[0])
        return Footprint((n_in + m + 1) * n + (m + 1) * K, T * (2 * n + 3 * m + K))


class LanguageModelParams(RecurrentParams):
    reduction: Literal["sum", "mean"] = Field(
        "sum", description="loss over a sequence: sum (2017-2023) or mean (2026)")


class SequenceLoss:
    """The language model's loss_fn: softmax cross-entropy of time-major scores (T*B, K)
    against next characters (B, T), -1 marking padding; reduction sum or mean (see
    nn.rnn.seq_softmax_loss)."""

    def __init__(self, reduction: str):
        self.reduction = reduction
        self.fn = R.seq_softmax_loss

    def __call__(self, scores, target, w=None):
        y = target.T.reshape(-1)
        mask = y >= 0
        loss, dO, _ = R.seq_softmax_loss(scores, np.maximum(y, 0), target.shape[0],
                                         None if mask.all() else mask, self.reduction)
        return loss, dO

    @staticmethod
    def proba(scores):
        return softmax(scores)


class Recurrent(Model):
    """Shared by both heads: the input gather, the cell over time, the output layer."""

    def __init__(self, p: RecurrentParams, n_in: int, K: int, dtype, rng):
        super().__init__(make_loss(p), p.l2)
        if p.loss.type != "softmax_ce":
            raise UserError(f"model.loss: recurrent models use softmax_ce, not {p.loss.type!r}")
        self.cell, self.m = p.cell, p.hidden
        n = p.hidden * (4 if p.cell == "lstm" else 1)
        init = make_init(p)
        init_out = init if p.init_out is None else INITS[p.init_out.type].factory(
            p.init_out.params)
        self.params["U"] = init(n_in, (n_in, n), rng, dtype)
        self.params["W"] = init(p.hidden, (p.hidden, n), rng, dtype)
        self.params["b"] = np.zeros(n, dtype)
        if p.cell == "lstm":
            self.params["b"][p.hidden:2 * p.hidden] = p.forget_bias
        self.params["V"] = init_out(p.hidden, (p.hidden, K), rng, dtype)
        self.params["c"] = np.zeros(K, dtype)
        self.decay = ["U", "W", "V"]

    def zero_state(self, B: int):
        """The initial state of B sequences: (h,) or (h, c) for the LSTM."""
        dt = self.params["W"].dtype
        z = np.zeros((B, self.m), dt)
        return (z,) if self.cell == "rnn" else (z, z.copy())

    def run_cell(self, x, state):
        """x (B, T) input indices, state -> (H (T, B, m), final state, cache)."""
        p = self.params
        A, ecache = R.embed_forward(x, p["U"], p["b"])
        if self.cell == "rnn":
            H, ccache = R.rnn_forward(A, state[0], p["W"])
            return H, (H[-1].copy(),), (ecache, ccache)
        H, C, ccache = R.lstm_forward(A, state[0], state[1], p["W"])
        return H, (H[-1].copy(), C[-1].copy()), (ecache, ccache)

    def cell_backward(self, dH, cache, grads: dict) -> None:
        ecache, ccache = cache
        if self.cell == "rnn":
            dA, grads["W"], _ = R.rnn_backward(dH, ccache)
        else:
            dA, grads["W"], _, _ = R.lstm_backward(dH, ccache)
        grads["U"], grads["b"] = R.embed_backward(dA, ecache)


class LanguageModel(Recurrent):
    def __init__(self, p: LanguageModelParams, info: DataInfo, dtype, rng):
        meta = info.meta
        if meta.get("task") != "lm":
            raise UserError("model rnn is a character language model; use the text dataset "
                            "(for surnames by language, model rnn_classifier)")
        self.K, self.n_in = int(meta["vocab"]), int(meta["n_inputs"])
        self.reduction = p.reduction
        super().__init__(p, self.n_in, self.K, dtype, rng)
        self.loss_fn = SequenceLoss(p.reduction)

    def _forward(self, x, state):
        """x (B, T) from state -> (scores (T*B, K) time-major, final state, cache)."""
        B, T = x.shape
        H, state_T, cache = self.run_cell(x, state)
        Hf = H.reshape(T * B, self.m)
        O = Hf @ self.params["V"]
        O += self.params["c"]
        return O, state_T, (Hf, cache, T, B)

    def _backward(self, dO, cache) -> dict:
        Hf, ccache, T, B = cache
        grads = {"V": Hf.T @ dO, "c": dO.sum(axis=0)}
        dH = (dO @ self.params["V"].T).reshape(T, B, self.m)
        self.cell_backward(dH, ccache, grads)
        return grads

    def forward(self, X, train: bool, rng=None):
        """The Model contract (gradient checks, the report): X (B, T) read from a zero state
        -> scores (T*B, K), time-major; loss_fn takes targets (B, T), -1 = padding."""
        O, _, cache = self._forward(X, self.zero_state(len(X)))
        return O, cache

    def backward(self, dscores, cache):
        return self._backward(dscores, cache)

    def seq_loss(self, x, y, state, mask=None):
        """One truncated-BPTT piece. x, y (B, T) inputs and next characters; state from
        zero_state or the previous piece; mask (B, T) 0/1 or None.
        Returns (loss, grads of loss + L2 penalty, final state)."""
        O, state_T, cache = self._forward(x, state)
        mt = None if mask is None else mask.T.reshape(-1)
        loss, dO, _ = R.seq_softmax_loss(O, y.T.reshape(-1), x.shape[0], mt, self.reduction)
        grads = self._backward(dO, cache)
        for k in self.decay if self.l2 else ():
            grads[k] += (2 * self.l2) * self.params[k]
        return loss, grads, state_T

    def seq_nll(self, x, y, state, mask=None):
        """Forward only: (summed negative log-likelihood, characters counted, final state)."""
        O, state_T, _ = self._forward(x, state)
        mt = None if mask is None else mask.T.reshape(-1)
        mean, _, _ = R.seq_softmax_loss(O, y.T.reshape(-1), x.shape[0], mt, "mean")
        n = x.size if mask is None else int(mask.sum())
        return mean * n, n, state_T

    def step_proba(self, x, state, temperature: float = 1.0):
        """One step for B sequences: x (B,) indices -> (p (B, K) next-char probabilities of
        softmax(o / T), new state)."""
        H, state, _ = self.run_cell(x[:, None], state)
        o = (H[0] @ self.params["V"] + self.params["c"]) / temperature
        o -= o.max(axis=1, keepdims=True)
        p = np.exp(o)
        p /= p.sum(axis=1, keepdims=True)
        return p, state


class RNNClassifier(Recurrent):
    def __init__(self, p: RecurrentParams, info: DataInfo, dtype, rng):
        if len(info.input_shape) != 1 or "vocab" not in info.meta:
            raise UserError("model rnn_classifier reads names as index sequences; use the "
                            "names dataset")
        self.d = int(info.meta["vocab"])
        super().__init__(p, self.d, info.n_classes, dtype, rng)

    def forward(self, X, train: bool, rng=None):
        """X (n, n_len) indices right-padded with d -> scores (n, K) from h after the
        last character."""
        n = X.shape[0]
        last = np.maximum((X < self.d).sum(axis=1) - 1, 0)
        H, _, cache = self.run_cell(np.minimum(X, self.d - 1), self.zero_state(n))
        h = H[last, np.arange(n)]
        scores = h @ self.params["V"] + self.params["c"]
        return scores, (cache, h, last, H.shape)

    def backward(self, dscores, cache):
        ccache, h, last, shape = cache
        grads = {"V": h.T @ dscores, "c": dscores.sum(axis=0)}
        dH = np.zeros(shape, dscores.dtype)
        dH[last, np.arange(len(last))] = dscores @ self.params["V"].T
        self.cell_backward(dH, ccache, grads)
        return grads


@MODELS.register("rnn", LanguageModelParams)
def build_lm(p: LanguageModelParams, info: DataInfo, dtype, rng) -> LanguageModel:
    """Character-level language model: vanilla RNN or LSTM cell, softmax over characters."""
    return LanguageModel(p, info, np.dtype(dtype), rng)


@MODELS.register("rnn_classifier", RecurrentParams)
def build_classifier(p: RecurrentParams, info: DataInfo, dtype, rng) -> RNNClassifier:
    """Surname classifier: an RNN or LSTM reads the name, its last hidden state is classified."""
    return RNNClassifier(p, info, np.dtype(dtype), rng)


def sample(model: LanguageModel, x0: int, state, n: int, rng, temperature: float = 1.0,
           top_p: float = 1.0, stop: int | None = None) -> list[int]:
    """n characters from the model, one at a time (the hand-out's synthesis): start from
    input x0 and state, feed each sampled character back; stop early after `stop` (EOS)."""
    out, x = [], np.array([x0])
    for u in rng.random(n):
        p, state = model.step_proba(x, state, temperature)
        k = R.sample_next(p[0], u, top_p)
        out.append(k)
        if k == stop:
            break
        x[0] = k
    return out
