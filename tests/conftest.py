import os
from pathlib import Path

# One BLAS thread, as `dl2424` sets before NumPy loads (dl2424/cli/__init__.py): in-process
# CLI tests otherwise get OpenBLAS threads that, on a busy machine, make a surname-ConvNet
# gradient check 20x slower.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, os.environ.get("DL2424_THREADS", "1"))

import matplotlib  # noqa: E402
import pytest  # noqa: E402

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
