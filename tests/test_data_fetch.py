"""`data fetch` with the network replaced by local files: real pooch hashing and unpacking."""

import hashlib
import io
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
import requests
from rich.console import Console

from dl2424.data import cifar, fetch, names
from dl2424.errors import UserError

from .fixtures import (
    real_data_dir,
    write_cifar_matlab,
    write_cifar_python,
    write_names_course,
    write_names_tutorial,
)

F64 = np.dtype(np.float64)


def serve(monkeypatch, files):
    """Make fetch download from local files {url: path}; other URLs fail like a dead network.
    Returns the list of URLs requested."""
    asked = []

    def make_downloader(url):
        def download(url_, output_file, pooch_obj, check_only=False):
            asked.append(url_)
            if url_ not in files:
                raise requests.exceptions.ConnectionError(f"Failed to resolve {url_}")
            shutil.copyfile(files[url_], output_file)

        return download

    monkeypatch.setattr(fetch, "make_downloader", make_downloader)
    return asked


def digest(path, algo):
    return f"{algo}:{hashlib.new(algo, path.read_bytes()).hexdigest()}"


def cifar_archive(tmp_path, fmt, drop=None):
    """A .tar.gz laid out like the official one, built from the fixture batches."""
    writer = write_cifar_python if fmt == "python" else write_cifar_matlab
    folder = writer(tmp_path / "src")
    if drop:
        (folder / drop).unlink()
    archive = tmp_path / f"cifar-{fmt}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


@pytest.mark.parametrize("fmt", ["python", "matlab"])
def test_fetch_cifar_unpacks_where_the_loader_looks(tmp_path, monkeypatch, fmt):
    archive = cifar_archive(tmp_path, fmt)
    url = fetch.CIFAR_ARCHIVES[fmt][0]
    monkeypatch.setitem(fetch.CIFAR_ARCHIVES, fmt, (url, digest(archive, "md5")))
    asked = serve(monkeypatch, {url: archive})
    data_dir = tmp_path / "data"
    result = fetch.fetch("cifar10", data_dir, fmt=fmt)
    assert asked == [url]
    assert result.folder == data_dir / cifar.FOLDERS[fmt] and result.pinned
    b = cifar.load(cifar.CifarParams(format=fmt), data_dir, F64)
    assert len(b.train) == 20 and b.info.class_names[0] == "airplane"
    again = fetch.fetch("cifar10", data_dir, fmt=fmt)
    assert again.already_present and asked == [url]  # nothing downloaded the second time


def test_a_wrong_checksum_is_rejected_and_nothing_is_kept(tmp_path, monkeypatch):
    archive = cifar_archive(tmp_path, "python")
    url, pinned = fetch.CIFAR_ARCHIVES["python"]  # the real md5 cannot match the fixture
    serve(monkeypatch, {url: archive})
    data_dir = tmp_path / "data"
    with pytest.raises(UserError) as e:
        fetch.fetch("cifar10", data_dir)
    msg = str(e.value)
    assert url in msg and "MD5 hash of downloaded file" in msg and pinned.split(":")[1] in msg
    assert "not kept" in msg
    assert not (data_dir / "cifar-10-python.tar.gz").exists()
    assert cifar.locate(data_dir) is None


def test_network_failure_names_the_url_and_the_manual_route(tmp_path, monkeypatch):
    serve(monkeypatch, {})
    with pytest.raises(UserError) as e:
        fetch.fetch("cifar10", tmp_path, fmt="matlab")
    msg = str(e.value)
    assert "download failed: https://www.cs.toronto.edu/~kriz/cifar-10-matlab.tar.gz" in msg
    assert "by hand" in msg and "70270af85842c9e89bb428ec9976c926" in msg and str(tmp_path) in msg


def test_an_archive_missing_a_batch_is_reported(tmp_path, monkeypatch):
    archive = cifar_archive(tmp_path, "python", drop="test_batch")
    url = fetch.CIFAR_ARCHIVES["python"][0]
    monkeypatch.setitem(fetch.CIFAR_ARCHIVES, "python", (url, digest(archive, "md5")))
    serve(monkeypatch, {url: archive})
    with pytest.raises(UserError, match="lacks test_batch"):
        fetch.fetch("cifar10", tmp_path / "data")


def test_fetch_course_names_checks_each_files_sha256(tmp_path, monkeypatch):
    src = write_names_course(tmp_path / "src")
    files = {fetch.NAMES_BASE_URL + f: src / f for f in names.COURSE_FILES}
    serve(monkeypatch, files)
    with pytest.raises(UserError, match="SHA256 hash of downloaded file"):
        fetch.fetch("names", tmp_path / "data")  # the pinned hashes are the real files'
    for f in names.COURSE_FILES:
        monkeypatch.setitem(fetch.NAMES_FILES, f, digest(src / f, "sha256"))
    result = fetch.fetch("names", tmp_path / "data")
    assert result.folder == tmp_path / "data" / "names"
    b = names.load(names.NamesParams(), tmp_path / "data", F64)
    assert b.info.class_names == names.read_categories(src / names.LABELS_FILE)


def test_pinned_names_hashes_match_the_real_files(tmp_path, monkeypatch):
    real = real_data_dir() / "names"
    asked = serve(monkeypatch, {fetch.NAMES_BASE_URL + f: real / f for f in names.COURSE_FILES})
    result = fetch.fetch("names", tmp_path)
    assert sorted(asked) == sorted(fetch.NAMES_BASE_URL + f for f in names.COURSE_FILES)
    assert fetch.NAMES_COMMIT in fetch.NAMES_BASE_URL and "/Lab3/" in fetch.NAMES_BASE_URL
    for f in names.COURSE_FILES:
        assert (result.folder / f).read_bytes() == (real / f).read_bytes()
    assert len(names.load(names.NamesParams(), tmp_path, F64).val) == 252


def test_fetch_tutorial_reports_the_unpinned_sha256(tmp_path, monkeypatch):
    src = write_names_tutorial(tmp_path / "src")  # src/data/names/<Language>.txt
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(src.iterdir()):
            z.write(f, f"data/names/{f.name}")
        z.writestr("data/eng-fra.txt", "Go.\tVa !\n")
    serve(monkeypatch, {fetch.TUTORIAL_URL: archive})
    result = fetch.fetch("names", tmp_path / "d", source="tutorial")
    assert not result.pinned
    assert result.hashes == {"data.zip": digest(archive, "sha256")}
    assert result.folder == tmp_path / "d" / "data" / "names"
    b = names.load(names.NamesParams(format="tutorial"), tmp_path / "d", F64)
    assert len(b.info.class_names) == 4


def test_fetch_option_mixups(tmp_path):
    with pytest.raises(UserError, match="--source applies to `names`"):
        fetch.fetch("cifar10", tmp_path, source="tutorial")
    with pytest.raises(UserError, match="--format applies to `cifar10`"):
        fetch.fetch("names", tmp_path, fmt="matlab")
    with pytest.raises(UserError, match="unknown dataset 'mnist'"):
        fetch.fetch("mnist", tmp_path)


def test_rich_progress_follows_pooch_calls():
    out = io.StringIO()
    bar = fetch.RichProgress("file.tar.gz", console=Console(file=out, force_terminal=False))
    bar.total = 5000  # what pooch's HTTPDownloader does, in order
    for _ in range(3):
        bar.update(1024)
    assert bar.completed == 3072
    bar.reset()
    bar.update(bar.total)
    bar.close()
    assert bar.completed == 5000
    assert "file.tar.gz" in out.getvalue()


def test_names_mirror_is_read_when_a_download_starts(monkeypatch):
    monkeypatch.delenv("DL2424_NAMES_URL", raising=False)
    assert fetch.names_base_url() == fetch.NAMES_BASE_URL
    monkeypatch.setenv("DL2424_NAMES_URL", "http://127.0.0.1:9/mirror/")
    assert fetch.names_base_url() == "http://127.0.0.1:9/mirror/"
