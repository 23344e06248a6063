"""How the command line presents itself: command order, argument names, flags, completion."""

import re

from typer.testing import CliRunner

from dl2424.cli import app

runner = CliRunner()


def _help(*args: str) -> str:
    r = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    return r.output


def test_commands_are_listed_by_use():
    out = _help()
    listed = re.findall(r"^│ ([a-z][a-z-]+)\s{2,}", out, flags=re.M)
    assert listed[:6] == ["train", "predict", "report", "runs", "compare", "gradcheck"]
    assert {"search", "ensemble", "config", "data", "convcheck"} <= set(listed)


def test_completion_is_offered():
    out = _help()
    assert "--install-completion" in out and "--show-completion" in out


def test_flags_show_no_value_type_and_arguments_one_way():
    import typer

    group = typer.main.get_command(app)
    commands = [[n] for n in group.list_commands(None)]  # every command, added by anyone
    commands += [["config", "show"], ["runs", "rm"], ["data", "fetch"]]
    for command in commands:
        out = _help(*command)
        assert "<bool>" not in out, command
        assert "{" not in out.split("\n", 3)[1], command  # usage line: CONFIG, [CONFIG]
        assert "list[" not in out, command
    usage = _help("train").split("\n", 3)[1]
    assert "[CONFIG...]" in usage
    assert "RUN..." in _help("report").split("\n", 3)[1]


def _complete(words: str, env=None) -> list[str]:
    r = runner.invoke(app, [], prog_name="dl2424", env={
        "_DL2424_COMPLETE": "complete_bash", "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))} | (env or {}))
    assert r.exit_code == 0, r.output
    return r.output.split()


def test_completion_of_configs_runs_and_registered_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    for name in ("names_a.yaml", "names_b.yaml", "other.yaml", "notes.txt"):
        (tmp_path / "configs" / name).write_text("name: x\n")
    run = tmp_path / "runs" / "20260101-000000-names_a"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\n")
    assert _complete("dl2424 train configs/na") == ["configs/names_a.yaml",
                                                     "configs/names_b.yaml"]
    assert _complete("dl2424 train --resume runs/2026") == [str(run.relative_to(tmp_path))]
    assert _complete("dl2424 report runs/") == [str(run.relative_to(tmp_path))]
    from dl2424.registry import OPTIMIZERS

    assert _complete("dl2424 train x.yaml --set optimizer=") == [
        f"optimizer={name}" for name in OPTIMIZERS.names()]
    assert "optimizer=adam" in _complete("dl2424 train x.yaml --set optimizer=")
    assert "train.steps=" in _complete("dl2424 train x.yaml --set train.s")
    assert _complete("dl2424 config show cyc") == ["cyclic"]
