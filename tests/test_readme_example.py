"""The README's "Adding a component" example, taken verbatim from README.md: registered,
validated, and trained with, so the README cannot drift from the code."""

import csv
import math
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dl2424 import schedules
from dl2424.cli import app
from dl2424.config import validate
from dl2424.errors import UserError

README = Path(__file__).parents[1] / "README.md"


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Adding a component", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def cosine(monkeypatch):
    """Runs the README block as if it were appended to dl2424/schedules.py; the schedule is
    unregistered again afterwards."""
    monkeypatch.setattr(schedules.SCHEDULES, "_entries", dict(schedules.SCHEDULES._entries))
    namespace = dict(vars(schedules))
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    return namespace["Cosine"]


CFG = {
    "name": "cosine", "seed": 1,
    "data": {"type": "cifar10"},
    "model": {"type": "mlp", "hidden": [], "init": "xavier"},
    "optimizer": {"type": "sgd", "lr": 0.01},
    "schedule": {"type": "cosine", "eta_min": 1e-4},
    "train": {"batch_size": 10, "steps": 7, "eval_every": 7},
}


def test_readme_schedule_decays_from_lr_to_eta_min(cosine):
    p = schedules.SCHEDULES["cosine"].params(eta_min=1e-4)
    lr = schedules.SCHEDULES["cosine"].factory(p, base_lr=0.01, steps_per_epoch=4,
                                                total_steps=5)
    assert [lr(t) for t in (0, 2, 4)] == pytest.approx([0.01, (0.01 + 1e-4) / 2, 1e-4])


def test_readme_schedule_is_validated_by_its_registry_entry(cosine):
    assert validate(CFG).schedule.type == "cosine"
    with pytest.raises(UserError, match="optimizer.lr is required with schedule 'cosine'"):
        validate({**CFG, "optimizer": "sgd"})
    with pytest.raises(UserError, match="schedule.eta_min"):
        validate({**CFG, "schedule": {"type": "cosine", "eta_min": -1}})


def test_readme_schedule_trains(env, cosine):
    (env / "cfg.yaml").write_text(yaml.safe_dump(CFG))
    res = CliRunner().invoke(app, ["train", str(env / "cfg.yaml"), "--runs-dir",
                                   str(env / "runs"), "--quiet"])
    assert res.exit_code == 0, res.output
    (run,) = (env / "runs").iterdir()
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert float(rows[-1]["lr"]) == pytest.approx(
        1e-4 + (0.01 - 1e-4) * (1 + math.cos(math.pi * 6 / 6)) / 2)
