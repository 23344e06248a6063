"""A finished text run made longer (--resume --set train.steps=N) continues exactly as a run
of that length from the start."""

from typer.testing import CliRunner

from dl2424.cli import app

from .test_seqtrain import config, train


def test_a_longer_text_run_equals_one_trained_that_long(tmp_path):
    cfg = config(tmp_path, **{"train.steps": 20})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run = train(tmp_path / "a", cfg)
    res = CliRunner().invoke(app, ["train", "--resume", str(run), "--set", "train.steps=40",
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    whole = train(tmp_path / "b", config(tmp_path))  # steps 40
    for name in ("metrics.csv", "samples.json"):
        assert (run / name).read_bytes() == (whole / name).read_bytes(), name
