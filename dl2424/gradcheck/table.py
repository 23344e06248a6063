"""A gradient-check report as a rich table plus its one-line summary."""

from __future__ import annotations

from rich.table import Table

from .result import GradReport, ParamCheck

COLUMNS = ("param", "shape", "h", "floor", "checked", "over tol", "max |a-n|", "mean |a-n|",
           "max rel err", "kinks", "verdict")
NUMERIC_ONLY = ("h", "kinks")


def _kinks(r: ParamCheck) -> str:
    if not r.kinks:
        return ""
    kinds = ", ".join(f"{kind} {k}" for kind, k in sorted(r.kinks.items()))
    parts = [f"{r.rechecked} re-checked"] if r.rechecked else []
    parts += [f"{r.excluded} excluded"] if r.excluded else []
    return f"{kinds}: {', '.join(parts)}"


def _verdict(r: ParamCheck) -> str:
    if r.checked == 0:
        return "[yellow]none left[/]"
    mark = "[green]pass[/]" if r.passed else "[red]FAIL[/]"
    return mark + (f" ({r.restepped} re-stepped)" if r.restepped else "")


def report_table(rep: GradReport) -> Table:
    numeric = rep.reference == "finite differences"
    title = f"gradient check: {rep.what}; against {rep.reference}"
    if numeric:
        title += f", {rep.method} differences"
    caption = [f"an entry agrees when its rel err <= {rep.tol:g} or its |a-n| <= floor "
               + ("(float64 rounding of J over h)" if numeric
                  else f"({rep.tol:g} x the parameter's largest gradient entry)")]
    if numeric:
        caption += [f"point: {rep.point}", f"sample: {rep.sample}"]
    t = Table(title=title, caption="\n".join(caption))
    for col in COLUMNS:
        if numeric or col not in NUMERIC_ONLY:
            t.add_column(col, justify="left" if col in ("param", "kinks", "verdict") else "right")
    for r in rep.rows:
        cells = [r.name, "×".join(map(str, r.shape)), f"{r.h:.1e}" if numeric else None,
                 f"{r.floor:.1e}", f"{r.checked:,}", f"{r.over:,}",
                 f"{r.max_abs:.2e}", f"{r.mean_abs:.2e}", f"{r.max_rel:.2e}",
                 _kinks(r) if numeric else None, _verdict(r)]
        t.add_row(*(c for c in cells if c is not None))
    return t
