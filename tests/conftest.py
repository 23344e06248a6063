from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from .fixtures import write_cifar_python, write_names_course  # noqa: E402


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory) -> Path:
    """Tiny CIFAR batches (40 images per file) and course surname files, written once."""
    root = tmp_path_factory.mktemp("data")
    write_cifar_python(root, n_per_batch=40)
    write_names_course(root)
    return root


@pytest.fixture
def env(fixture_data, tmp_path, monkeypatch) -> Path:
    """A fresh working folder, with DL2424_DATA_DIR pointing at the fixture data."""
    monkeypatch.setenv("DL2424_DATA_DIR", str(fixture_data))
    return tmp_path
