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
    """lr(t) plus what the config and the trainer must know: whether it uses the
    optimizer's base lr (`needs_base_lr`, checked by the config), and the length of a
    number of cycles (`has_cycles`: `train.cycles` and `train.snapshots` need it). A
    schedule registers its class in SCHEDULES."""

    needs_base_lr = True
    has_cycles = False

    def __init__(self, p, base_lr, steps_per_epoch, total_steps):
        self.p, self.base_lr = p, base_lr
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps

    def cycle_steps(self, cycles: int) -> int | None:
        return None


@SCHEDULES.register("constant")
class Constant(Schedule):
    """The optimizer's lr at every step."""

    def __call__(self, t):
        return self.base_lr


@SCHEDULES.register("step", StepParams)
class StepDecay(Schedule):
    """lr * gamma^floor(epoch / every_epochs) (A1 bonus: 0.95 per epoch; /10 every n)."""

    def __call__(self, t):
        k = t // (self.steps_per_epoch * self.p.every_epochs)
        return self.base_lr * self.p.gamma**k


@SCHEDULES.register("cyclic", CyclicParams)
class Cyclic(Schedule):
    """Triangular cyclical lr between eta_min and eta_max, half-cycle n_s steps.

    Smith 2015 (A2 eq. 14-15): eta rises linearly from eta_min to eta_max over n_s steps,
    falls back over the next n_s; one cycle = 2 n_s."""

    needs_base_lr = False
    has_cycles = True

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


@SCHEDULES.register("linear", LinearParams)
class LinearDecay(Schedule):
    """Linear decay from the optimizer's lr to end_factor times it.

    Budgeted Training, the A2 2024 Nesterov bonus."""

    def __call__(self, t):
        frac = min(t / max(self.total_steps - 1, 1), 1.0)
        return self.base_lr * (1 - frac * (1 - self.p.end_factor))


@SCHEDULES.register("range_test", RangeParams)
class RangeTest(Schedule):
    """LR range test: lr swept from lr_min to lr_max over the run (exp or linear).

    Smith 2015."""

    needs_base_lr = False

    def __call__(self, t):
        frac = t / max(self.total_steps - 1, 1)
        lo, hi = self.p.lr_min, self.p.lr_max
        if self.p.spacing == "linear":
            return lo + frac * (hi - lo)
        return math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo)))
