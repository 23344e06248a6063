"""Analytic gradients against finite differences, entry by entry, for any model.

Per parameter: a step from its scale (numeric.step_for), a seeded sample of entries when
it is large, and for each entry one finite difference whose two points are compared for
kinks (dl2424.nn.kinks). An entry whose difference crossed a kink is re-checked at a
shifted point (analytic and numerical gradients both recomputed there), or excluded when
every shift crosses one too; an entry that disagrees is retried along a step-halving
sequence before it counts as a disagreement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..nn import kinks
from ..rng import Stream, generator
from .numeric import (
    Estimate,
    difference,
    entries,
    noise_floor,
    rounding_noise,
    stable_estimate,
    step_for,
)
from .point import JITTER, jitter_point
from .problem import Problem
from .result import GradReport, ParamCheck

NUMERIC_TOL = 1e-6
DEFAULT_BUDGET = 400  # entries per check when --max-entries is not given
BIG_MODEL = 1_000_000  # parameters; larger models get proportionally fewer entries
SHIFTS = (4.0, -4.0, 16.0)  # re-check points, in steps, for an entry next to a kink

Progress = Callable[[int, int, str], None]  # (entries done, entries in all, parameter)


@dataclass(frozen=True)
class Options:
    method: str = "centred"  # or "forward"
    h: float | None = None  # None: per parameter from its scale; a value: that step for all
    tol: float | None = None  # None: 1e-6 against finite differences, 1e-10 against torch
    eps: float = 1e-8  # floor of the relative error's denominator
    atol: float | None = None  # None: the measured rounding noise of J over h
    max_entries: int | None = None  # None: the default sample; 0: every entry
    at: str = "generic"  # or "init": no jitter
    jitter: float = JITTER


def rel_error(a, n, eps):
    """Elementwise |a - n| / max(eps, |a| + |n|) (A1 hand-out, section on gradient checks)."""
    return np.abs(a - n) / np.maximum(eps, np.abs(a) + np.abs(n))


def max_rel_error(a, n, eps=1e-12, atol=0.0) -> float:
    """The largest rel_error over the entries whose absolute difference exceeds `atol`
    (0: all entries): with atol at the noise floor of the differences, entries whose true
    gradient is exactly zero (noise / noise = 1) do not count. What layer tests assert."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    mask = np.abs(a - n) > atol
    return float(rel_error(a[mask], n[mask], eps).max(initial=0.0))


def entries_per_param(params: dict, max_entries: int | None) -> int | None:
    """The sample size for each parameter: None means every entry. By default the budget
    is shared among the parameters (at least 2 each), and a model of more than BIG_MODEL
    parameters, whose forward pass costs about that many multiply-adds per example, gets a
    proportionally smaller budget (the UvA VGG: 2 entries per parameter)."""
    if max_entries == 0:
        return None
    if max_entries is not None:
        return max_entries
    total = sum(w.size for w in params.values())
    budget = DEFAULT_BUDGET * min(1.0, BIG_MODEL / max(1, total))
    return max(2, round(budget / max(1, len(params))))


def sample(grad: np.ndarray, k: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted flat indices of k entries (all when k is None or the array is that small):
    half among the entries whose analytic gradient is non-zero, the rest among the others
    and any left over. Zero entries say little (a 3x3 filter on a 1x1 map touches only its
    centre) but are not skipped: a wrongly zeroed gradient shows there."""
    n = grad.size
    if k is None or n <= k:
        return np.arange(n)
    nonzero = np.flatnonzero(grad.reshape(-1))
    first = rng.choice(nonzero, min(len(nonzero), (k + 1) // 2), replace=False)
    rest = np.setdiff1d(np.arange(n), first, assume_unique=True)
    return np.sort(np.concatenate([first, rng.choice(rest, k - len(first), replace=False)]))


class _Entries:
    """The compared entries of one parameter, accumulated."""

    def __init__(self, tol, eps, atol):
        self.tol, self.eps, self.atol = tol, eps, atol
        self.diff, self.rel, self.ok = [], [], []

    def agrees(self, a: float, est: Estimate, noise: float) -> bool:
        floor = self.atol if self.atol is not None else noise_floor(noise, est.h)
        d = abs(a - est.value)
        return d <= floor or float(rel_error(a, est.value, self.eps)) <= self.tol

    def add(self, a: float, est: Estimate, noise: float):
        floor = self.atol if self.atol is not None else noise_floor(noise, est.h)
        d = abs(a - est.value)
        self.diff.append(d)
        self.rel.append(float(rel_error(a, est.value, self.eps)))
        self.ok.append(d <= floor or self.rel[-1] <= self.tol)


class _Checker:
    def __init__(self, problem: Problem, opts: Options, progress: Progress | None):
        self.p, self.o, self.progress = problem, opts, progress
        self.done = self.total = 0

    def at_theta(self):
        """(J, choices) at the current point, for forward differences."""
        if self.o.method != "forward":
            return None
        with kinks.recording() as rec:
            J = self.p.cost()
        return J, rec

    def shifted(self, name, flat, i, h) -> tuple[float, Estimate] | None:
        """(analytic, estimate) at the first shift of entry i whose difference crosses no
        kink, or None."""
        old = flat[i]
        try:
            for k in SHIFTS:
                flat[i] = old + k * h
                est = difference(self.p.cost, flat, i, h, self.o.method, self.at_theta())
                if not est.crossed:
                    _, grads = self.p.cost_and_grads()
                    return float(grads[name].reshape(-1)[i]), est
            return None
        finally:
            flat[i] = old

    def param(self, name, w, idx, noise, grad) -> ParamCheck:
        o = self.o
        h = o.h or step_for(w)
        flat, ana = entries(w), grad.reshape(-1)
        acc = _Entries(o.tol, o.eps, o.atol)
        row = ParamCheck(name, w.shape, 0, 0, 0.0, 0.0, None, True, h=h,
                         floor=o.atol if o.atol is not None else noise_floor(noise, h))
        theta = self.at_theta()
        for i in idx:
            a, est = float(ana[i]), difference(self.p.cost, flat, i, h, o.method, theta)
            if est.crossed:
                for kind in sorted(est.crossed):
                    row.kinks[kind] = row.kinks.get(kind, 0) + 1
                found = self.shifted(name, flat, i, h)
                if found is None:
                    row.excluded += 1
                    self.tick(name)
                    continue
                row.rechecked += 1
                a, est = found
            elif not acc.agrees(a, est, noise) and o.h is None:
                better = stable_estimate(self.p.cost, flat, i, h, o.method, theta)
                if better is not None and acc.agrees(a, better, noise):
                    row.restepped += 1
                    est = better
            acc.add(a, est, noise)
            self.tick(name)
        diff = np.array(acc.diff)
        row.checked, row.over = len(acc.diff), int(np.sum(~np.array(acc.ok, dtype=bool)))
        row.max_abs = float(diff.max(initial=0.0))
        row.mean_abs = float(diff.mean()) if diff.size else 0.0
        row.max_rel = max(acc.rel, default=0.0)
        row.passed = row.over == 0 and row.checked > 0
        return row

    def tick(self, name):
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, name)


def check_model(problem: Problem, opts: Options = Options(),
                progress: Progress | None = None) -> GradReport:
    """Check every parameter of problem.model (moved to a generic point first unless
    opts.at == "init"; the move is in place and recorded in the report)."""
    if opts.method not in ("centred", "forward"):
        raise ValueError(f"method {opts.method!r} is not one of centred, forward")
    if opts.tol is None:
        opts = replace(opts, tol=NUMERIC_TOL)
    params = problem.model.params
    moved = jitter_point(params, problem.seed, opts.jitter) if opts.at == "generic" else {}
    J, analytic = problem.cost_and_grads()
    problem.check_cost(J)
    noise = rounding_noise(problem.cost, params, generator(problem.seed, Stream.CHECK, 3))
    k = entries_per_param(params, opts.max_entries)
    pick = generator(problem.seed, Stream.CHECK, 1)
    plan = [(name, w, sample(analytic[name], k, pick)) for name, w in params.items()]
    checker = _Checker(problem, opts, progress)
    checker.total = sum(len(idx) for _, _, idx in plan)
    rows = [checker.param(name, w, idx, noise, analytic[name]) for name, w, idx in plan]
    point = "init"
    if moved:
        point = (f"init + seeded jitter {opts.jitter:g} x size on the exact zeros and ties "
                 f"of {', '.join(moved)}")
    sampled = ("every entry" if k is None
              else f"up to {k} random entries per parameter, half of them among those with a "
                   "non-zero analytic gradient (--max-entries 0: all)")
    return GradReport(problem.what, "finite differences", rows, opts.tol, method=opts.method,
                      point=point, sample=sampled,
                      jitter={"seed": problem.seed, "stream": int(Stream.CHECK), "key": 2,
                              "scale": opts.jitter, "moved": moved})
