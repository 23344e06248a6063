"""`dl2424 data list | fetch | inspect` through typer's CliRunner, and the data-dir rules."""

import hashlib
import shutil
import tarfile
from pathlib import Path

import pooch
import pytest
from typer.testing import CliRunner

from dl2424 import settings
from dl2424.cli import app
from dl2424.data import fetch

from .fixtures import real_data_dir, write_cifar_python, write_names_course

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # keep rich from wrapping paths in the tables


def run(*args, **env):
    return runner.invoke(app, ["data", *map(str, args)], env={**WIDE, **env})


@pytest.fixture
def data_dir(tmp_path):
    write_cifar_python(tmp_path / "cifar-10-subset")
    write_names_course(tmp_path)
    return tmp_path


def test_settings_precedence_option_then_variable_then_default(tmp_path):
    env = {"DL2424_DATA_DIR": str(tmp_path / "env"), "DL2424_RUNS_DIR": str(tmp_path / "r")}
    s = settings.read(tmp_path / "cli", environ=env)
    assert (s.data_dir, s.data_dir_origin) == (tmp_path / "cli", "--data-dir")
    s = settings.read(runs_dir=tmp_path / "mine", environ=env)
    assert (s.data_dir, s.data_dir_origin) == (tmp_path / "env", "$DL2424_DATA_DIR")
    assert (s.runs_dir, s.sweeps_dir) == (tmp_path / "mine", Path("sweeps"))
    s = settings.read(environ={})
    assert s.data_dir == Path(pooch.os_cache("dl2424")) and s.runs_dir == Path("runs")
    assert settings.read(environ={"DL2424_THREADS": "3"}).threads == 3


def test_runs_dir_is_read_when_the_command_starts(tmp_path, monkeypatch):
    """Not when dl2424 is imported: the variable set afterwards still moves `runs`."""
    monkeypatch.chdir(tmp_path)  # no sweeps/ here either
    monkeypatch.setenv("DL2424_RUNS_DIR", str(tmp_path / "elsewhere"))
    res = CliRunner().invoke(app, ["runs"])
    assert res.exit_code == 2  # no such folder, and the message names the one it looked in
    assert f"{tmp_path / 'elsewhere'}: no such folder" in res.output


def test_list_shows_what_is_present(data_dir):
    r = run("list", "--data-dir", data_dir)
    assert r.exit_code == 0, r.output
    assert "cifar10" in r.output and "names" in r.output
    assert r.output.count("present") == 2
    assert r.output.count("missing") == 1  # text: the fixture folder holds no known book
    assert str(data_dir / "cifar-10-subset" / "cifar-10-batches-py") in r.output
    assert "from --data-dir" in r.output


def test_list_uses_the_environment_and_says_where_it_looked(tmp_path):
    r = run("list", **{settings.DATA_DIR: str(tmp_path)})
    assert r.exit_code == 0, r.output
    assert r.output.count("missing") == 3
    assert "dl2424 data fetch goblet" in r.output
    assert str(tmp_path / "*" / "cifar-10-batches-py") in r.output
    assert str(tmp_path / "names" / "ascii_names.txt") in r.output
    assert "dl2424 data fetch names" in r.output and f"from ${settings.DATA_DIR}" in r.output


def test_inspect_names(data_dir):
    r = run("inspect", "names", "--data-dir", data_dir, "--limit", "2")
    assert r.exit_code == 0, r.output
    assert "120 names, 108 train, 12 val, 4 classes" in r.output  # write_names_course defaults
    assert "Arabic" in r.output and "Dutch" in r.output
    assert "names carry more than one label" in r.output
    assert "validation names also occur in the training part" in r.output


def test_inspect_cifar(data_dir):
    r = run("inspect", "cifar10", "--data-dir", data_dir)
    assert r.exit_code == 0, r.output
    assert "airplane" in r.output and "truck" in r.output
    for split in ("train", "val", "test"):
        assert f"│ {split}" in r.output


def test_missing_data_is_exit_2_with_the_fetch_command(tmp_path):
    r = run("inspect", "cifar10", "--data-dir", tmp_path)
    assert r.exit_code == 2
    assert "dl2424 data fetch cifar10" in r.output and "Traceback" not in r.output


def test_fetch_through_the_cli(tmp_path, monkeypatch):
    folder = write_cifar_python(tmp_path / "src")
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    url = fetch.CIFAR_ARCHIVES["python"][0]
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(fetch.CIFAR_ARCHIVES, "python", (url, f"md5:{md5}"))
    monkeypatch.setattr(fetch, "make_downloader",
                        lambda _: lambda u, out, p, check_only=False: shutil.copyfile(archive, out))
    r = run("fetch", "cifar10", "--data-dir", tmp_path / "d")
    assert r.exit_code == 0, r.output
    assert md5 in r.output and "verified" in r.output
    r = run("fetch", "cifar10", "--data-dir", tmp_path / "d")
    assert "already present" in r.output


def test_fetch_option_errors_exit_2(tmp_path):
    r = run("fetch", "cifar10", "--source", "tutorial", "--data-dir", tmp_path)
    assert r.exit_code == 2 and "--source applies to `names`" in r.output
    r = run("fetch", "mnist", "--data-dir", tmp_path)
    assert r.exit_code == 2  # not one of the choices (click's usage error)


def test_inspect_real_names():
    r = run("inspect", "names", "--data-dir", real_data_dir())
    assert r.exit_code == 0, r.output
    assert "20050 names, 19798 train, 252 val, 18 classes" in r.output
    assert "alphabet (28 characters)" in r.output and "n_len = 19" in r.output
