"""Reports from run folders: figures, tables, report.md and a self-contained index.html,
for one run or several side by side; and the `compare` / `runs` tables."""

from .compare import compare, runs_table, select
from .html import make_report
from .load import Run, read_run, require_metrics

__all__ = ["Run", "compare", "make_report", "read_run", "require_metrics", "runs_table",
           "select"]
