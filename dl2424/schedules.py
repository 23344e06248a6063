"""Learning-rate schedules: pure functions of the update step t = 0, 1, 2, ..."""

from __future__ import annotations

import math

from pydantic import Field, PositiveInt, model_validator

from .registry import SCHEDULES, Params


class StepParams(Params):
    gamma: float = Field(0.95, gt=0, le=1, description="factor applied every `every_epochs`")
    every_epochs: PositiveInt = 1


class CyclicParams(Params):
    eta_min: float = Field(1e-5, gt=0)
    eta_max: float = Field(1e-1, gt=0)
    n_s: PositiveInt = 500
    double_every_cycle: bool = False  # 2026 hand-out: n_s doubles after each cycle

    @model_validator(mode="after")
    def _order(self):
        if self.eta_min >= self.eta_max:
            raise ValueError(f"eta_min ({self.eta_min}) must be below eta_max ({self.eta_max})")
        return self


class LinearParams(Params):
    end_factor: float = Field(0.0, ge=0, le=1, description="lr at the last step, times base lr")


class RangeParams(Params):
    lr_min: float = Field(1e-5, gt=0)
    lr_max: float = Field(1.0, gt=0)
    spacing: str = Field("exp", pattern="^(exp|linear)$")


class Schedule:
    """lr(t) plus what the trainer must know: whether it uses the optimizer's base lr,
    and the length of one cycle (for `train.cycles`)."""

    needs_base_lr = True

    def __init__(self, p, base_lr, steps_per_epoch, total_steps):
        self.p, self.base_lr = p, base_lr
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps

    def cycle_steps(self, cycles: int) -> int | None:
        return None


class Constant(Schedule):
    def __call__(self, t):
        return self.base_lr


class StepDecay(Schedule):
    def __call__(self, t):
        k = t // (self.steps_per_epoch * self.p.every_epochs)
        return self.base_lr * self.p.gamma**k


class Cyclic(Schedule):
    """Triangular cyclical learning rate, Smith 2015 (A2 eq. 14-15): eta rises linearly from
    eta_min to eta_max over n_s steps, falls back over the next n_s; one cycle = 2 n_s."""

    needs_base_lr = False

    def _cycle(self, t):
        n_s, start = self.p.n_s, 0
        while self.p.double_every_cycle and t >= start + 2 * n_s:
            start, n_s = start + 2 * n_s, 2 * n_s
        return t - start, n_s

    def __call__(self, t):
        lo, hi = self.p.eta_min, self.p.eta_max
        u, n_s = self._cycle(t)
        u = u % (2 * n_s)
        frac = u / n_s if u <= n_s else 2 - u / n_s
        return lo + frac * (hi - lo)

    def cycle_steps(self, cycles):
        """Steps in the first `cycles` cycles: 2 n_s each, or 2 n_s (2^cycles - 1) when n_s
        doubles. In closed form, without a loop over cycles (train.cycles may be huge; the
        caller refuses a length over limits.MAX_STEPS, and past 2^64 the exact number does
        not matter)."""
        if not self.p.double_every_cycle:
            return 2 * self.p.n_s * cycles
        return 2 * self.p.n_s * (2 ** min(cycles, 64) - 1)


class LinearDecay(Schedule):
    """Linear decay from the base lr to end_factor * base lr at the last step (Budgeted
    Training, the A2 2024 Nesterov bonus)."""

    def __call__(self, t):
        frac = min(t / max(self.total_steps - 1, 1), 1.0)
        return self.base_lr * (1 - frac * (1 - self.p.end_factor))


class RangeTest(Schedule):
    """The LR range test sweep (Smith 2015): lr grows from lr_min to lr_max over the run,
    linearly or exponentially."""

    needs_base_lr = False

    def __call__(self, t):
        frac = t / max(self.total_steps - 1, 1)
        lo, hi = self.p.lr_min, self.p.lr_max
        if self.p.spacing == "linear":
            return lo + frac * (hi - lo)
        return math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo)))


@SCHEDULES.register("constant")
def constant(p, **kw):
    """The optimizer's lr at every step."""
    return Constant(p, **kw)


@SCHEDULES.register("step", StepParams)
def step(p, **kw):
    """lr * gamma^floor(epoch / every_epochs) (A1 bonus: 0.95 per epoch; /10 every n)."""
    return StepDecay(p, **kw)


@SCHEDULES.register("cyclic", CyclicParams)
def cyclic(p, **kw):
    """Triangular cyclical lr between eta_min and eta_max, half-cycle n_s steps."""
    return Cyclic(p, **kw)


@SCHEDULES.register("linear", LinearParams)
def linear(p, **kw):
    """Linear decay from the optimizer's lr to end_factor times it."""
    return LinearDecay(p, **kw)


@SCHEDULES.register("range_test", RangeParams)
def range_test(p, **kw):
    """LR range test: lr swept from lr_min to lr_max over the run (exp or linear)."""
    return RangeTest(p, **kw)
