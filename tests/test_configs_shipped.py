"""Every shipped config validates, and its resolved form (what a run folder stores)
validates again to the same experiment — resume depends on that round trip."""

from pathlib import Path

import pytest
import yaml

from dl2424.config import load_experiment, validate

CONFIGS = sorted(p for p in (Path(__file__).parent.parent / "configs").glob("*.yaml")
                 if not p.name.startswith("search_"))


def test_there_are_configs():
    assert len(CONFIGS) >= 11


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_round_trips(path):
    exp = load_experiment(path)
    assert exp.name == path.stem  # a run folder is named after the file it came from
    again = validate(yaml.safe_load(yaml.safe_dump(exp.dump())))
    assert again == exp and again.digest() == exp.digest()
