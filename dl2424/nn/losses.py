"""Losses: each maps scores (n, K) and a target to (mean loss, dscores).

A target is either integer labels y (n,) or a soft target matrix T (n, K) whose rows sum
to 1 (soft multi-labels, label smoothing). Optional per-example weights w (n,) scale each
example's loss (the hand-out's class-weighted loss, Assignment 3 eq. 47); the mean is
still taken over n so that weights normalised to mean 1 keep the loss scale.
"""

from __future__ import annotations

import numpy as np

from ..registry import LOSSES
from . import kinks


def one_hot(y, K, dtype):
    T = np.zeros((y.shape[0], K), dtype=dtype)
    T[np.arange(y.shape[0]), y] = 1
    return T


def softmax(s):
    """Row-wise softmax, shifted by the row maximum so exp never overflows."""
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _weights(w, n, dtype):
    return np.ones(n, dtype=dtype) if w is None else w.astype(dtype, copy=False)


def softmax_cross_entropy(s, target, w=None):
    """l_i = -sum_k t_ik log p_ik with p = softmax(s_i); dl/ds = p - t (eq. 10 of A1)."""
    n, K = s.shape
    z = s - s.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    T = one_hot(target, K, s.dtype) if target.ndim == 1 else target
    w = _weights(w, n, s.dtype)
    loss = -(w * (T * log_p).sum(axis=1)).sum() / n
    ds = (np.exp(log_p) - T) * (w / n)[:, None]
    return float(loss), ds


def multiclass_svm(s, target, w=None, margin=1.0):
    """Hinge loss l_i = sum_{j != y_i} max(0, s_j - s_y + margin) (CS231n form)."""
    if target.ndim != 1:
        target = target.argmax(axis=1)
    n = s.shape[0]
    rows = np.arange(n)
    m = s - s[rows, target][:, None] + margin
    m[rows, target] = 0
    kinks.note_sign("hinge", m)
    active = (m > 0).astype(s.dtype)
    w = _weights(w, n, s.dtype)
    loss = (w * np.maximum(m, 0).sum(axis=1)).sum() / n
    ds = active
    ds[rows, target] = -active.sum(axis=1)
    ds *= (w / n)[:, None]
    return float(loss), ds


def sigmoid(s):
    return 0.5 * (1 + np.tanh(0.5 * s))  # stable for large |s|


def binary_cross_entropy(s, target, w=None):
    """Sigmoid + multiple binary cross-entropy (A1 2022 bonus):
    l = -(1/K) sum_k [(1-y_k) log(1-p_k) + y_k log p_k],  dl/ds = (p - y)/K."""
    n, K = s.shape
    T = one_hot(target, K, s.dtype) if target.ndim == 1 else target
    # log p = -softplus(-s), log(1-p) = -softplus(s), computed stably.
    log_p = -np.logaddexp(0, -s)
    log_1mp = -np.logaddexp(0, s)
    w = _weights(w, n, s.dtype)
    per_ex = -((1 - T) * log_1mp + T * log_p).sum(axis=1) / K
    loss = (w * per_ex).sum() / n
    ds = (sigmoid(s) - T) * (w / (n * K))[:, None]
    return float(loss), ds.astype(s.dtype, copy=False)


class Loss:
    """A registered loss: the function and how scores become class probabilities."""

    def __init__(self, fn, proba):
        self.fn = fn
        self.proba = proba

    def __call__(self, s, target, w=None):
        return self.fn(s, target, w)


@LOSSES.register("softmax_ce")
def _softmax_ce(params=None):
    """Softmax cross-entropy."""
    return Loss(softmax_cross_entropy, softmax)


@LOSSES.register("svm")
def _svm(params=None):
    """Multi-class SVM (hinge) loss, margin 1; probabilities shown as softmax of scores."""
    return Loss(multiclass_svm, softmax)


@LOSSES.register("bce")
def _bce(params=None):
    """Sigmoid + multiple binary cross-entropy; class probabilities are independent
    sigmoids p_k = sigma(s_k), as the A1 bonus reads them (they need not sum to 1)."""
    return Loss(binary_cross_entropy, sigmoid)
