"""Never a traceback (issue 12, category 5): damaged run-folder files through every command
that reads them, file-system errors (full disk, read-only folder) anywhere output is
written, rich markup in user text, and gradcheck options that make no sense. Each ends in
one message and exit status 2 (or, where the damage does not matter, in a normal answer);
a run interrupted by a full disk resumes bit-identical once there is room again."""

import errno
import json
import os
import shutil
import warnings

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dl2424 import atomic, experiment
from dl2424.cli import app
from dl2424.config import validate

from .runcheck import assert_same_run, snapshot

runner = CliRunner()
real_mkstemp = atomic.tempfile.mkstemp

NAMES = {"name": "nt", "seed": 2, "data": {"type": "names"},
         "model": {"type": "charcnn", "layers": [{"filters": 3, "width": 2}]},
         "optimizer": {"type": "momentum", "lr": 0.05},
         "train": {"batch_size": 8, "steps": 6, "eval_every": 2, "checkpoint_every": 2}}


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch, fixture_data):
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setenv("DL2424_DATA_DIR", str(fixture_data))


@pytest.fixture(scope="module")
def trained(fixture_data, tmp_path_factory):
    return experiment.start(validate(NAMES), [], fixture_data, tmp_path_factory.mktemp("r"))[0]


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "runs" / trained.name
    shutil.copytree(trained, copy)
    return copy


def cli(*args):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), \
        f"{type(res.exception).__name__}: {res.exception}\n{res.output}"
    assert "Traceback" not in res.output
    return res


def interrupted(run):
    s = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps(s | {"status": "interrupted"}))


# ---------------------------------------------------------------------------- damaged files

def _meta(run, **changes):
    for name in ("checkpoint.npz", "best.npz"):
        with np.load(run / name, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["meta"] = np.array(json.dumps(json.loads(str(arrays["meta"])) | changes))
        np.savez(run / name, **arrays)


DAMAGE = {  # name: (file, how)
    "summary list": ("summary.json", lambda f: f.write_text("[1, 2]")),
    "summary test str": ("summary.json", lambda f: f.write_text(json.dumps(
        json.loads(f.read_text()) | {"test": "high"}))),
    "summary best str": ("summary.json", lambda f: f.write_text(json.dumps(
        json.loads(f.read_text()) | {"best": {"val_acc": "x"}}))),
    "summary steps bool": ("summary.json", lambda f: f.write_text(json.dumps(
        json.loads(f.read_text()) | {"steps": True}))),
    "summary truncated": ("summary.json", lambda f: f.write_text(f.read_text()[:30])),
    "summary latin1": ("summary.json", lambda f: f.write_bytes(b'{"name": "\xe9"}')),
    "summary nested": ("summary.json", lambda f: f.write_text("[" * 100000 + "]" * 100000)),
    "metrics latin1": ("metrics.csv", lambda f: f.write_bytes(f.read_bytes() + b"\xff\xfe\n")),
    "config latin1": ("config.yaml", lambda f: f.write_bytes(b"name: \xe9t\xe9\n")),
    "config nested": ("config.yaml", lambda f: f.write_text("a: " + "[" * 50000 + "]" * 50000)),
    "config list": ("config.yaml", lambda f: f.write_text("- 1\n- 2\n")),
    "config model list": ("config.yaml", lambda f: f.write_text(
        f.read_text().replace("model:\n", "model: [1]\nmodel_was:\n"))),
    "data truncated": ("data.json", lambda f: f.write_text(f.read_text()[:40])),
    "data list": ("data.json", lambda f: f.write_text("[]")),
    "data classes number": ("data.json", lambda f: f.write_text(json.dumps(
        json.loads(f.read_text()) | {"class_names": 7}))),
    "data meta list": ("data.json", lambda f: f.write_text(json.dumps(
        json.loads(f.read_text()) | {"meta": [1]}))),
}
COMMANDS = ["report", "compare", "runs", "predict", "resume"]
# Damage a command does not need to read: it answers as usual (exit 0).
HARMLESS = {("predict", f) for f in ("summary", "metrics")} | {
    ("resume", f) for f in ("summary", "data")} | {("compare", "data")}


def command(name, run):
    return {"report": ["report", run, "--out", run.parent.parent / "rep"],
            "compare": ["compare", run],
            "runs": ["runs", run.parent],
            "predict": ["predict", "--run", run, "--name", "abc"],
            "resume": ["train", "--resume", run, "--quiet"]}[name]


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", COMMANDS)
def test_damaged_run_folder_files(run, name, damage):
    file, how = DAMAGE[damage]
    if name == "resume":
        interrupted(run)
    how(run / file)
    res = cli(*command(name, run))
    if name == "runs":  # the folder is listed, as unreadable: its record is damaged
        assert res.exit_code == 0, res.output
        assert "unreadable" in res.output, res.output
    elif (name, file.split(".")[0]) in HARMLESS:
        assert res.exit_code in (0, 2), res.output
    else:
        assert res.exit_code == 2, res.output
        assert "error:" in res.output


@pytest.mark.parametrize("changes,word", [({"skipped_batches": "x"}, "skipped_batches"),
                                          ({"step": True}, "step"),
                                          ({"step": -1}, "step"),
                                          ({"sampled": "abc"}, "sampled"),
                                          ({"best": [1]}, "best")])
def test_checkpoint_meta_of_the_wrong_type_is_refused(run, changes, word):
    interrupted(run)
    _meta(run, **changes)
    before = snapshot(run)
    res = cli("train", "--resume", run, "--quiet")
    assert res.exit_code == 2 and word in res.output, res.output
    assert snapshot(run) == before


def test_one_bad_run_does_not_hide_the_others(run, trained):
    shutil.copytree(trained, run.parent / "20990101-000000-good")
    (run / "summary.json").write_text("[]")
    res = cli("runs", run.parent)
    assert res.exit_code == 0
    assert "unreadable" in res.output and "good" in res.output.replace("\n", "")


# ---------------------------------------------------------------------------- file system

def _failing(monkeypatch, code, after=0):
    """Every atomic write after the first `after` ones fails with OSError `code`."""
    real, calls = atomic.tempfile.mkstemp, []

    def mkstemp(*a, dir=None, **k):
        calls.append(dir)
        if len(calls) > after:
            raise OSError(code, os.strerror(code), str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    return calls


@pytest.mark.parametrize("code,word", [(errno.ENOSPC, "No space left"),
                                       (errno.EROFS, "Read-only"),
                                       (errno.EACCES, "Permission denied")])
def test_train_on_a_full_or_read_only_disk(tmp_path, monkeypatch, code, word):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(NAMES))
    _failing(monkeypatch, code)
    res = cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs", "--quiet")
    assert res.exit_code == 2 and word in res.output, res.output


@pytest.mark.parametrize("after", [11, 14, 17, 22, 26, 30, 31])
def test_a_disk_that_fills_mid_run_then_resume_is_bit_identical(trained, tmp_path,
                                                                monkeypatch, after):
    """The run makes 32 atomic writes; the disk fills after `after` of them (a checkpoint,
    metrics, a confusion, best.npz, class_counts.json, the final summary)."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(NAMES))
    _failing(monkeypatch, errno.ENOSPC, after=after)
    res = cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs", "--quiet")
    assert res.exit_code == 2 and "No space left" in res.output, res.output
    monkeypatch.setattr(atomic.tempfile, "mkstemp", real_mkstemp)  # room again
    (run,) = (tmp_path / "runs").iterdir()
    assert not list(run.rglob("*.tmp"))
    res = cli("train", "--resume", run, "--quiet")
    assert res.exit_code == 0, res.output
    assert_same_run(trained, run)


@pytest.mark.parametrize("what", ["resume", "report", "compare", "gradcheck", "lr-range",
                                  "search"])
def test_full_disk_in_every_command_that_writes(run, tmp_path, monkeypatch, what):
    interrupted(run)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(NAMES))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"base": NAMES, "method": "grid",
                                                     "space": {"seed": {"grid": [1]}}}))
    args = {"resume": ["train", "--resume", run, "--quiet"],
            "report": ["report", run],
            "compare": ["compare", run, "--csv", tmp_path / "t.csv"],
            "gradcheck": ["gradcheck", tmp_path / "c.yaml", "--save", tmp_path / "g.json"],
            "lr-range": ["lr-range", tmp_path / "c.yaml", "--steps", "4", "--quiet",
                         "--runs-dir", tmp_path / "lr"],
            "search": ["search", tmp_path / "s.yaml", "--workers", "1", "--sweeps-dir",
                       tmp_path / "sw"]}[what]
    before = snapshot(run)
    _failing(monkeypatch, errno.ENOSPC, after=0 if what != "search" else 3)
    res = cli(*args)
    assert res.exit_code == 2 and "No space left" in res.output, res.output
    if what == "resume":
        assert {k: v for k, v in snapshot(run).items() if k != "summary.json"} == \
            {k: v for k, v in before.items() if k != "summary.json"}


# ---------------------------------------------------------------------------- markup

def test_markup_in_a_name_is_text(run):
    res = cli("predict", "--run", run, "--name", "ab[/]")
    assert res.exit_code == 2 and "'ab[/]'" in res.output, res.output
    res = cli("predict", "--run", run, "--name", "ab[/]", "--name", "[bold]x[/bold]",
              "--drop-unknown")
    assert res.exit_code == 0 and "ab[/]" in res.output and "[bold]x[/bold]" in res.output


@pytest.mark.parametrize("folder", ["br[/]x", "runs[old]", "[red]r"])
def test_markup_in_a_runs_folder_is_text(tmp_path, folder):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(NAMES))
    res = cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / folder, "--quiet")
    assert res.exit_code == 0 and folder in res.output.replace("\n", ""), res.output
    (run,) = (tmp_path / folder).iterdir()
    for args in (["runs", tmp_path / folder, "--wide"], ["report", run],
                 ["compare", run, "--wide"]):
        res = cli(*args)
        assert res.exit_code == 0 and folder in res.output.replace("\n", ""), (args,
                                                                             res.output)


def test_markup_in_an_error_message_is_text(tmp_path):
    res = cli("train", tmp_path / "no[/]such[old].yaml")
    assert res.exit_code == 2 and "no[/]such[old].yaml" in res.output


# ---------------------------------------------------------------------------- gradcheck

@pytest.mark.parametrize("args,flag", [(["--h", "0"], "--h"), (["--h", "-1e-5"], "--h"),
                                       (["--h", "inf"], "--h"), (["--h", "nan"], "--h"),
                                       (["--dims", "-5"], "--dims"), (["--n", "0"], "--n"),
                                       (["--crop", "-1"], "--crop"), (["--tol", "0"], "--tol"),
                                       (["--eps", "-1"], "--eps"),
                                       (["--max-entries", "-2"], "--max-entries")])
def test_gradcheck_options_that_make_no_sense(tmp_path, args, flag):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(NAMES))
    res = cli("gradcheck", tmp_path / "c.yaml", *args)
    assert res.exit_code == 2 and flag in res.output, res.output


def test_a_dry_run_that_diverges_exits_1_without_a_traceback(tmp_path):
    """A finite but huge learning rate is the user's to try: it diverges (exit 1)."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(NAMES))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the one message only
        res = cli("train", tmp_path / "c.yaml", "--dry-run", "--set", "optimizer.lr=1e12")
    assert res.exit_code == 1 and "diverged" in res.output, res.output
