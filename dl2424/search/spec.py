"""The search spec: YAML → validated pydantic models, errors as `dotted.path: what is wrong`.

    name: lambda-coarse            # sweep folder name; default: the spec file's stem
    base: cifar_a2.yaml            # experiment YAML (relative to this file) or a mapping
    space:                         # dotted config keys → one distribution each
      model.l2: {log_grid: {lo: 1.0e-5, hi: 1.0e-1, n: 8}}
    method: grid                   # grid: cartesian product | random: `trials` draws
    metric: val_acc                # a column of metrics.csv
    metric_from: best              # best: the best-val-acc row | final: the last row
    refine: {top_k: 3, factor: 2}  # with `--from SWEEP`: narrow ranges around its best

Distributions: {choice: [a, b]} · {grid: [a, b]} · {uniform: [lo, hi]} ·
{log_uniform: [lo, hi]} (10^U(log10 lo, log10 hi)) · {int_uniform: [lo, hi]} (both ends
included) · {log_grid: {lo, hi, n}} (n values evenly spaced in log10, both ends included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from ..config import format_errors, read_config, read_yaml
from ..errors import UserError
from ..registry import Params

MAX_TRIALS = 10_000
METRIC = re.compile(r"^(train|val)_(loss|cost|acc)$|^val_[a-z0-9_]+_acc$")
DOTTED_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class Choice(Params):
    choice: list[Any] = Field(min_length=1)


class Grid(Params):
    grid: list[Any] = Field(min_length=1)


class Uniform(Params):
    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _order(self):
        _check_order(*self.uniform)
        return self


class LogUniform(Params):
    log_uniform: tuple[PositiveFloat, PositiveFloat]

    @model_validator(mode="after")
    def _order(self):
        _check_order(*self.log_uniform)
        return self


class IntUniform(Params):
    int_uniform: tuple[int, int]

    @model_validator(mode="after")
    def _order(self):
        lo, hi = self.int_uniform
        if lo > hi:
            raise ValueError(f"lo ({lo}) must not be above hi ({hi})")
        return self


class LogGridRange(Params):
    lo: PositiveFloat
    hi: PositiveFloat
    n: int = Field(ge=2)

    @model_validator(mode="after")
    def _order(self):
        _check_order(self.lo, self.hi)
        return self


class LogGrid(Params):
    log_grid: LogGridRange


def _check_order(lo: float, hi: float) -> None:
    if not lo < hi:
        raise ValueError(f"lo ({lo}) must be below hi ({hi})")


KINDS: dict[str, type[Params]] = {
    "choice": Choice, "grid": Grid, "uniform": Uniform, "log_uniform": LogUniform,
    "int_uniform": IntUniform, "log_grid": LogGrid,
}
FINITE = (Choice, Grid, IntUniform, LogGrid)  # what method: grid can enumerate
CONTINUOUS = (Uniform, LogUniform)  # what refine narrows
USAGE = ("{choice: [a, b]}, {grid: [a, b]}, {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, "
         "{int_uniform: [lo, hi]} or {log_grid: {lo: .., hi: .., n: ..}}")


def _distribution(value):
    if isinstance(value, tuple(KINDS.values())):
        return value
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in KINDS:
        got = f"keys {sorted(map(str, value))}" if isinstance(value, dict) else repr(value)
        raise ValueError(f"expected one distribution: {USAGE}; got {got}")
    kind = next(iter(value))
    return KINDS[kind].model_validate(value)


Distribution = Annotated[Params, BeforeValidator(_distribution),
                         PlainSerializer(lambda d: d.model_dump(mode="json"))]


def kind_of(dist: Params) -> str:
    return next(iter(type(dist).model_fields))


class Refine(Params):
    """Coarse-to-fine: narrow each uniform/log_uniform key around the best trials of the
    sweep given with `--from` (see dl2424.search.sample.narrow for the exact rule)."""

    top_k: PositiveInt = 3
    factor: float = Field(2.0, gt=1)


class SearchSpec(Params):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=60)
    base: str | dict[str, Any]
    space: dict[str, Distribution] = Field(min_length=1)
    method: Literal["grid", "random"] = "random"
    trials: PositiveInt | None = Field(None, le=MAX_TRIALS)
    seed: int = Field(0, ge=0)
    metric: str = "val_acc"
    metric_from: Literal["best", "final"] = "best"
    direction: Literal["max", "min"] | None = Field(
        None, description="default: max for …acc metrics, min for …loss/…cost")
    refine: Refine | None = None

    @field_validator("space")
    @classmethod
    def _dotted_keys(cls, space):
        bad = [k for k in space if not DOTTED_KEY.match(k)]
        if bad:
            raise ValueError(f"keys must be dotted config paths like model.l2; bad: {bad}")
        return space

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric):
        if not METRIC.match(metric):
            raise ValueError(f"{metric!r} is not a metrics.csv column; use one of train_loss, "
                             "train_cost, train_acc, val_loss, val_cost, val_acc")
        return metric

    @model_validator(mode="after")
    def _consistent(self):
        if self.method == "grid":
            if self.trials is not None:
                raise ValueError("trials: not used with method: grid (every grid point is a "
                                 "trial); remove it or use method: random")
            loose = [k for k, d in self.space.items() if not isinstance(d, FINITE)]
            if loose:
                raise ValueError(f"method: grid needs finite distributions (choice, grid, "
                                 f"log_grid, int_uniform); {', '.join(loose)} "
                                 f"{'is' if len(loose) == 1 else 'are'} continuous — use "
                                 "method: random")
            if grid_size(self.space) > MAX_TRIALS:
                raise ValueError(f"the grid has {grid_size(self.space)} points, more than "
                                 f"{MAX_TRIALS}; use method: random with trials")
        elif self.trials is None:
            raise ValueError("method: random needs trials: N (how many to draw)")
        if self.refine is not None:
            if self.method != "random":
                raise ValueError("refine needs method: random (it draws around centres)")
            if not any(isinstance(d, CONTINUOUS) for d in self.space.values()):
                raise ValueError("refine narrows uniform/log_uniform keys, and the space has "
                                 "none")
        if self.direction is None:
            object.__setattr__(self, "direction", "max" if self.metric.endswith("acc")
                               else "min")
        return self


def grid_size(space: dict[str, Params]) -> int:
    n = 1
    for d in space.values():
        n *= (d.int_uniform[1] - d.int_uniform[0] + 1 if isinstance(d, IntUniform)
              else d.log_grid.n if isinstance(d, LogGrid)
              else len(getattr(d, kind_of(d))))
    return n


@dataclass
class Search:
    """A validated spec with its base experiment read in (a mapping, not yet validated)."""

    spec: SearchSpec
    base: dict
    source: str  # where the spec came from, for messages

    def resolved(self) -> dict:
        """The spec as written to sweep.yaml: base inline, defaults filled in."""
        return self.spec.model_dump(mode="json") | {"base": self.base}


def validate_spec(raw: dict, source: str) -> SearchSpec:
    try:
        return SearchSpec.model_validate(raw)
    except ValidationError as e:
        raise UserError(format_errors(e, source)) from None


def load_spec(path: Path) -> Search:
    path = Path(path)
    spec = validate_spec(read_yaml(path), str(path))
    if isinstance(spec.base, str):
        base = read_config(path.parent / spec.base)  # with its own base: chain
    else:
        base = spec.base
    if spec.name is None:
        spec = spec.model_copy(update={"name": re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem)})
    return Search(spec, base, str(path))


def from_resolved(raw: dict, source: str) -> Search:
    """A Search from the `spec:` section of a sweep.yaml (base already inline)."""
    spec = validate_spec(raw, source)
    return Search(spec, dict(spec.base), source)
