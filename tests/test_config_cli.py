"""Seeing the config before training: --print-config, --dry-run, `config show`."""

from pathlib import Path

import yaml
from typer.testing import CliRunner

from dl2424.cli import app
from dl2424.config import load_experiment

runner = CliRunner()

SMALL = {"name": "small", "data": {"type": "cifar10"},
         "model": {"type": "mlp", "hidden": [6]},
         "optimizer": {"type": "momentum", "lr": 0.01, "rho": 0.8},
         "train": {"batch_size": 8, "epochs": 3}}


def test_print_config_is_the_resolved_yaml_and_writes_nothing(env):
    cfg = env / "small.yaml"
    cfg.write_text(yaml.safe_dump(SMALL))
    r = runner.invoke(app, ["train", str(cfg), "--set", "train.steps=7", "--print-config",
                            "--runs-dir", str(env / "runs")])
    assert r.exit_code == 0, r.output
    printed = yaml.safe_load(r.stdout)
    assert printed == load_experiment(cfg, ["train.steps=7"]).dump()
    assert printed["train"]["steps"] == 7 and printed["train"]["epochs"] is None
    assert printed["model"]["activation"] == "relu"  # defaults spelled out
    assert not (env / "runs").exists()


def test_dry_run_reports_sizes_updates_memory_and_eta_without_a_run(env):
    cfg = env / "small.yaml"
    cfg.write_text(yaml.safe_dump(SMALL))
    r = runner.invoke(app, ["train", str(cfg), "--dry-run", "--runs-dir", str(env / "runs")],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    out = r.output
    # 40 images per CIFAR fixture batch, course split: 40 train / 40 val / 40 test
    assert "40 train / 40 val / 40 test" in out
    assert f"{3072 * 6 + 6 + 6 * 10 + 10:,} parameters" in out
    assert "15 (5 per epoch)" in out  # 3 epochs of 40 // 8 updates
    assert "optimizer state" in out and "ETA" in out
    assert not (env / "runs").exists()


def test_dry_run_of_a_bad_config_is_one_clear_error(env):
    cfg = env / "small.yaml"
    cfg.write_text(yaml.safe_dump(SMALL | {"train": {"batch_size": 500, "epochs": 1}}))
    r = runner.invoke(app, ["train", str(cfg), "--dry-run"])
    assert r.exit_code == 2 and "train.batch_size: 500 is larger" in r.output
    assert "Traceback" not in r.output


def test_config_show_lists_keys_types_and_defaults():
    r = runner.invoke(app, ["config", "show", "cyclic"], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert "schedule cyclic" in r.output
    for key, default in (("eta_min", "1e-05"), ("eta_max", "0.1"), ("n_s", "500")):
        assert any(key in ln and default in ln for ln in r.output.splitlines()), key
    md = runner.invoke(app, ["config", "show", "train", "--markdown"]).output
    assert "| `batch_size` | int > 0 | `100` |" in md
    assert "| `on_nan` | stop \\| skip_batch | `stop` |" in md
    opt = runner.invoke(app, ["config", "show", "optimizer"]).output
    assert all(f"optimizer {n}" in opt for n in ("sgd", "momentum", "nesterov", "adam"))
    bad = runner.invoke(app, ["config", "show", "adamw"])
    assert bad.exit_code == 2 and "no such section, kind or type" in bad.output


def test_config_show_writes_the_readme_key_table(tmp_path):
    from dl2424.config_docs import BEGIN, END, KINDS

    doc = tmp_path / "README.md"
    doc.write_text(f"# x\n\nbefore\n\n{BEGIN}\nstale row\n{END}\n\nafter\n")
    r = runner.invoke(app, ["config", "show", "--readme", str(doc)])
    assert r.exit_code == 0, r.output
    text = doc.read_text()
    assert "stale row" not in text and text.startswith("# x\n\nbefore\n") and "after" in text
    table = text.split(BEGIN)[1].split(END)[0]
    for kind, registry in KINDS.items():
        for name in registry.names():
            assert f"| {kind} `{name}` |" in table
    assert "`n_s` = 500" in table and "`dtype` = float32 (float32 \\| float64)" in table
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert BEGIN in readme and "| optimizer `adam` |" in readme  # the README holds the table
    bad = tmp_path / "plain.md"
    bad.write_text("no markers\n")
    r = runner.invoke(app, ["config", "show", "--readme", str(bad)])
    assert r.exit_code == 2 and "markers" in r.output and bad.read_text() == "no markers\n"


def test_config_show_readme_missing_file_is_one_error_line(tmp_path):
    missing = tmp_path / "NO_README.md"
    r = runner.invoke(app, ["config", "show", "--readme", str(missing)])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "NO_README.md" in lines[0]
    assert "Traceback" not in r.output and not missing.exists()
