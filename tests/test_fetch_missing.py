"""`train` (and `make demo`) without the data: download it from a local HTTP server on
127.0.0.1 with checksums, saying what and where; offline, one message with the command."""

import functools
import hashlib
import http.server
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dl2424.cli import app
from dl2424.data import fetch

from .fixtures import real_data_dir, write_names_course

runner = CliRunner()
ROOT = Path(__file__).parent.parent
NAMES = {"name": "n", "data": {"type": "names"},
         "model": {"type": "charcnn", "layers": [{"filters": 3, "width": 2}]},
         "optimizer": {"type": "momentum", "lr": 0.01}, "train": {"batch_size": 8, "steps": 3}}


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """Serves a folder at http://127.0.0.1:<port>/; yields (folder setter, base url)."""
    served = {}
    handler = functools.partial(lambda *a, **k: Quiet(*a, directory=served["dir"], **k))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_downloads_missing_names_data_with_checksums(tmp_path, server, monkeypatch):
    served, url = server
    files = write_names_course(tmp_path / "served", folder=".")
    served["dir"] = str(files)
    monkeypatch.setattr(fetch, "NAMES_BASE_URL", url)
    monkeypatch.setattr(fetch, "NAMES_FILES", {f: _sha256(files / f) for f in fetch.NAMES_FILES})
    data = tmp_path / "empty"
    (tmp_path / "n.yaml").write_text(yaml.safe_dump(NAMES))
    r = runner.invoke(app, ["train", str(tmp_path / "n.yaml"), "--quiet", "--data-dir",
                            str(data), "--runs-dir", str(tmp_path / "runs")],
                      env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert (f"names data not found under {data}: downloading the course's 3 surname files "
            f"(sha256-checked) from {url} into {data}") in r.output
    assert all((data / "names" / f).read_bytes() == (files / f).read_bytes()
               for f in fetch.NAMES_FILES)
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_a_bad_checksum_keeps_nothing(tmp_path, server, monkeypatch):
    served, url = server
    served["dir"] = str(write_names_course(tmp_path / "served", folder="."))
    monkeypatch.setattr(fetch, "NAMES_BASE_URL", url)  # the real pinned hashes cannot match
    (tmp_path / "n.yaml").write_text(yaml.safe_dump(NAMES))
    r = runner.invoke(app, ["train", str(tmp_path / "n.yaml"), "--data-dir",
                            str(tmp_path / "d"), "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 2 and "was not kept" in r.output
    assert not list((tmp_path / "d").rglob("ascii_names.txt"))
    assert not (tmp_path / "runs").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_is_one_message_with_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "NAMES_BASE_URL", f"http://127.0.0.1:{_closed_port()}/")
    (tmp_path / "n.yaml").write_text(yaml.safe_dump(NAMES))
    data = tmp_path / "d"
    r = runner.invoke(app, ["train", str(tmp_path / "n.yaml"), "--data-dir", str(data),
                            "--runs-dir", str(tmp_path / "runs")], env={"COLUMNS": "300"})
    assert r.exit_code == 2, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.output
    assert errors[0].endswith(f"with a network, run: dl2424 data fetch names --data-dir {data}")
    assert "could not be downloaded from http://127.0.0.1:" in errors[0]
    assert "(ConnectionError)" in errors[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_make_demo_on_a_machine_without_the_data(tmp_path, server):
    """`make demo` from scratch: the real course files, served locally, pass the pinned
    sha256 checks; a short demo trains and predicts."""
    served, url = server
    served["dir"] = str(real_data_dir() / "names")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DL2424_")}
    env |= {"DL2424_DATA_DIR": str(tmp_path / "data"), "DL2424_NAMES_URL": url,
            "DL2424_RUNS_DIR": str(tmp_path / "runs"), "COLUMNS": "300"}
    r = subprocess.run(["make", "-o", ".venv/.installed", "demo",
                        f"DL2424_DATA_DIR={tmp_path / 'data'}",
                        "DEMO_ARGS=--quiet --set train.steps=30"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"downloading the course's 3 surname files (sha256-checked) from {url}" in r.stderr
    assert (tmp_path / "data" / "names" / "ascii_names.txt").is_file()
    assert "Xiong" in r.stdout and "Nakamura" in r.stdout  # the predictions
