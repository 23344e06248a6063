"""PyTorch autograd as the reference: a gradient with no finite-difference error at all.

Every model family has a *torch twin*: the same network written with torch operations,
computing the same cost J = loss + penalty from the same weights. Autograd's gradient of
the twin's J is compared with the model's analytic gradients in float64; they agree to
rounding (~1e-13 relative), so any real disagreement is a bug. torch is imported only when
such a check runs (the `torch` extra); nothing else in dl2424 needs it.

How a model family registers its twin
-------------------------------------
Add one file dl2424/gradcheck/twins/<family>.py (every module there is imported when a
check against torch runs; nothing else to edit)::

    from ..torch_ref import TWINS, TwinContext

    @TWINS.register("rnn")  # the model's registered type (its `model.type` in a config)
    def rnn_twin(ctx: TwinContext, model, X, P):
        '''The model's cost J in torch (the first docstring line shows in error messages).'''
        torch = ctx.torch                  # the torch module, imported lazily
        h = ctx.tensor(X)                  # numpy -> float64 tensor (constants)
        ...                                # P: float64 leaves, keyed like model.params
        h = ctx.activation(h, "relu")      # relu / leaky_relu as the product's layers
        h = ctx.batchnorm(h, "bn1", P["gamma1"], P["beta1"], eps)  # batch or running stats
        h = ctx.dropout(h, keep)           # the model's mask: call it where, and in the
                                           # order, the model draws its dropout masks
        return ctx.cost(scores)            # the model's loss + its L2 penalty

`ctx.train` says which mode is checked (training; and evaluation, with the running
statistics, for models with batch-norm `state`). A twin may also build J itself (a
sequence loss, say) from ctx.loss / ctx.penalty. A new loss adds its torch form to
TORCH_LOSSES below, keyed by the NumPy function's name.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..nn import layers
from ..registry import Registry
from .check import Options, rel_error
from .point import jitter_point
from .problem import Problem
from .result import GradReport, ParamCheck

TWINS = Registry("torch twin")
TORCH_TOL = 1e-10  # both sides are exact up to float64 rounding


def _import_torch():
    try:
        import torch
    except ImportError:
        raise UserError("--against torch needs PyTorch: pip install 'dl2424[torch]'") from None
    return torch


def _load_twins():
    from . import twins

    for info in pkgutil.iter_modules(twins.__path__):
        importlib.import_module(f"{twins.__name__}.{info.name}")


@dataclass
class TwinContext:
    """What a twin needs besides the model: torch, the mode, the batch, and helpers that
    match the product's layers exactly."""

    torch: object
    problem: Problem
    P: dict
    train: bool
    rng: np.random.Generator  # the check's dropout generator, drawn from in model order

    def tensor(self, a):
        return self.torch.as_tensor(np.asarray(a, dtype=np.float64))

    def dropout(self, t, keep: float):
        """t times the model's inverted-dropout mask (the same draws as the model), or t
        in evaluation mode."""
        if not self.train or keep >= 1:
            return t
        _, mask = layers.dropout_forward(np.ones(tuple(t.shape)), keep, self.rng)
        return t * self.tensor(mask)

    def activation(self, t, kind: str = "relu", slope: float = 0.0):
        F = self.torch.nn.functional
        return F.relu(t) if kind == "relu" else F.leaky_relu(t, slope)

    def batchnorm(self, t, prefix: str, gamma, beta, eps: float):
        """Batch norm over every axis but 1: batch mean and biased variance in training,
        the model's running statistics (state[prefix + ".mean"/".var"]) in evaluation."""
        axes = (0, *range(2, t.dim()))
        shape = (1, -1) + (1,) * (t.dim() - 2)
        if self.train:
            mu = t.mean(dim=axes, keepdim=True)
            var = ((t - mu) ** 2).mean(dim=axes, keepdim=True)
        else:
            state = self.problem.model.state
            mu = self.tensor(state[f"{prefix}.mean"]).reshape(shape)
            var = self.tensor(state[f"{prefix}.var"]).reshape(shape)
        return (t - mu) / self.torch.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)

    def loss(self, scores):
        """The model's loss (mean over the batch, per-example weights) of scores (n, K)."""
        fn = self.problem.model.loss_fn.fn
        if fn.__name__ not in TORCH_LOSSES:
            raise UserError(f"--against torch: no torch form of the loss {fn.__name__}")
        p = self.problem
        n, K = scores.shape
        target = np.asarray(p.target)
        T = np.eye(K)[target] if target.ndim == 1 else target
        w = np.ones(n) if p.weights is None else p.weights
        return TORCH_LOSSES[fn.__name__](self.torch, scores, self.tensor(T), self.tensor(w))

    def penalty(self):
        m = self.problem.model
        return m.l2 * sum((self.P[k] ** 2).sum() for k in m.decay) if m.l2 else 0.0

    def cost(self, scores):
        return self.loss(scores) + self.penalty()


def _softmax_ce(torch, s, T, w):
    log_p = torch.log_softmax(s, dim=1)
    return -(w * (T * log_p).sum(dim=1)).sum() / s.shape[0]


def _svm(torch, s, T, w, margin=1.0):
    y = T.argmax(dim=1)
    other = 1 - torch.nn.functional.one_hot(y, s.shape[1]).to(s.dtype)
    m = (s - s.gather(1, y[:, None]) + margin) * other
    return (w * torch.clamp(m, min=0).sum(dim=1)).sum() / s.shape[0]


def _bce(torch, s, T, w):
    F = torch.nn.functional
    per_ex = -((1 - T) * -F.softplus(s) + T * -F.softplus(-s)).sum(dim=1) / s.shape[1]
    return (w * per_ex).sum() / s.shape[0]


TORCH_LOSSES = {"softmax_cross_entropy": _softmax_ce, "multiclass_svm": _svm,
                "binary_cross_entropy": _bce}


def torch_grads(problem: Problem, train: bool = True) -> dict[str, np.ndarray]:
    """Autograd's gradients of the twin's J, keyed like the model's params."""
    torch = _import_torch()
    _load_twins()
    kind = problem.model_type
    if kind not in TWINS:
        raise UserError(f"--against torch: no torch twin for model type {kind!r} (twins: "
                        f"{', '.join(TWINS.names())}); see dl2424/gradcheck/torch_ref.py")
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
         for k, v in problem.model.params.items()}
    ctx = TwinContext(torch, problem, P, train, problem.rng())
    J = TWINS[kind].factory(ctx, problem.model, problem.X, P)
    J.backward()
    return {k: (t.grad.numpy() if t.grad is not None else np.zeros(t.shape))
            for k, t in P.items()}


def _row(name, a, t, tol, eps) -> ParamCheck:
    """Entries agree when their relative error is <= tol, or their difference is <= tol
    times the parameter's largest gradient entry (the floor): an entry that is a sum of many
    large terms cancelling to ~0 carries rounding of the terms' size, not of its own."""
    diff = np.abs(a - t).reshape(-1)
    rel = rel_error(a, t, eps).reshape(-1)
    floor = tol * float(np.abs(t).max(initial=0.0))
    over = int(np.sum((rel > tol) & (diff > floor)))
    return ParamCheck(name, a.shape, a.size, over, float(diff.max(initial=0)),
                      float(diff.mean()) if diff.size else 0.0, float(rel.max(initial=0)),
                      over == 0, floor=floor)


def check_against_torch(problem: Problem, opts: Options = Options()) -> list[GradReport]:
    """One report per mode: training (dropout masks fixed, batch statistics) and, for a
    model with state (batch norm), evaluation with its running statistics."""
    tol = opts.tol if opts.tol is not None else TORCH_TOL
    moved = jitter_point(problem.model.params, problem.seed, opts.jitter) \
        if opts.at == "generic" else {}
    reports = []
    for train in (True, False) if problem.model.state else (True,):
        _, ana = problem.cost_and_grads(train=train)
        ref = torch_grads(problem, train)
        rows = [_row(k, ana[k].astype(np.float64), ref[k], tol, opts.eps)
                for k in problem.model.params]
        mode = "training mode" if train else "evaluation mode (running statistics)"
        reports.append(GradReport(f"{problem.what}, {mode}", "torch autograd", rows, tol,
                                  point="init" if not moved else "init + jitter",
                                  jitter={"seed": problem.seed, "moved": moved},
                                  sample="every entry"))
    return reports
