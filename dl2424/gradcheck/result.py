"""What a gradient check found, per parameter, and its one-line summary and JSON form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ParamCheck:
    """One parameter array: analytic gradient against a reference (finite differences or
    autograd).

    checked counts the entries compared (those re-checked at a shifted point included);
    over, those that disagree: relative error above the tolerance *and* absolute difference
    above the noise floor (where the true gradient is ~0, two rounding errors have relative
    error ~1: max_rel can exceed tol on agreeing entries, max_abs <= floor says why). The
    verdict is over == 0. kinks counts, per kind, the entries
    whose difference crossed a kink; each was re-checked at a shifted point or excluded.
    restepped counts entries that agreed only at a step of the step-halving sequence.
    """

    name: str
    shape: tuple
    checked: int
    over: int
    max_abs: float
    mean_abs: float
    max_rel: float
    passed: bool
    h: float | None = None
    floor: float | None = None
    kinks: dict[str, int] = field(default_factory=dict)
    rechecked: int = 0
    excluded: int = 0
    restepped: int = 0

    def to_json(self) -> dict:
        d = asdict(self)
        d["param"] = d.pop("name")
        d["shape"] = list(self.shape)
        return d


@dataclass
class GradReport:
    """A table's worth: what was checked, against what, and the rows."""

    what: str
    reference: str  # "finite differences" or "torch autograd"
    rows: list[ParamCheck]
    tol: float
    method: str = ""
    point: str = "init"
    jitter: dict = field(default_factory=dict)  # {"seed", "scale", "moved": {param: count}}
    sample: str = ""

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def summary(self) -> str:
        n_ok = sum(r.passed for r in self.rows)
        checked = sum(r.checked for r in self.rows)
        over = sum(r.over for r in self.rows)
        line = (f"{'PASS' if self.passed else 'FAIL'}: {n_ok}/{len(self.rows)} parameters agree "
                f"with {self.reference}; {checked:,} entries checked, {over:,} over tolerance")
        rechecked = sum(r.rechecked for r in self.rows)
        excluded = sum(r.excluded for r in self.rows)
        if kinked := rechecked + excluded:
            line += (f"; {kinked} crossed a kink ({rechecked} re-checked at a shifted point, "
                     f"{excluded} excluded)")
        restepped = sum(r.restepped for r in self.rows)
        if restepped:
            line += f"; {restepped} agreed at another step"
        return line

    def to_json(self) -> dict:
        return {"what": self.what, "reference": self.reference, "method": self.method,
                "tol": self.tol, "point": self.point, "jitter": self.jitter,
                "sample": self.sample, "passed": self.passed, "summary": self.summary(),
                "rows": [r.to_json() for r in self.rows]}
