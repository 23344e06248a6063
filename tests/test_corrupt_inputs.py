"""Bad files through the command line: damaged data files, damaged checkpoints, folders that are
not run folders. Each gives exit status 2, one message naming what and where, no traceback,
and leaves nothing behind: no run folder for `train`, an unchanged folder for `--resume`."""

import json
import os
import pickle
import shutil
import signal
import zipfile

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dl2424 import experiment
from dl2424.cli import app
from dl2424.config import validate
from dl2424.trainer import Reporter, StopFlag

from .fixtures import write_cifar_matlab, write_cifar_python, write_names_course
from .runcheck import RICH, snapshot

runner = CliRunner()

NAMES = {"name": "names", "seed": 1, "data": {"type": "names"},
         "model": {"type": "charcnn", "layers": [{"filters": 3, "width": 2}]},
         "optimizer": {"type": "momentum", "lr": 0.01}, "sampler": "balanced",
         "train": {"batch_size": 8, "steps": 4}}


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def assert_clean_error(res, *where):
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output and "error:" in res.output
    for w in where:
        assert str(w) in res.output, (w, res.output)


def train(tmp_path, cfg, data_dir):
    file = tmp_path / "cfg.yaml"
    file.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["train", str(file), "--runs-dir", str(tmp_path / "runs"),
                              "--data-dir", str(data_dir), "--quiet"])
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    return res


# ---------------------------------------------------------------------------- CIFAR files

def dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def batch(n=40, **change):
    d = {b"data": np.zeros((n, 3072), np.uint8), b"labels": [i % 10 for i in range(n)]}
    d.update({k.encode(): v for k, v in change.items()})
    return {k: v for k, v in d.items() if v is not None}


def truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


CIFAR_DAMAGE = {
    "batch missing": ("data_batch_1", lambda p: p.unlink()),
    "meta missing": ("batches.meta", lambda p: p.unlink()),
    "test batch missing": ("test_batch", lambda p: p.unlink()),
    "empty file": ("data_batch_1", lambda p: p.write_bytes(b"")),
    "truncated to 10 bytes": ("data_batch_1", lambda p: truncate(p, lambda n: 10)),
    "truncated to half": ("data_batch_2", lambda p: truncate(p, lambda n: n // 2)),
    "last byte cut": ("test_batch", lambda p: truncate(p, lambda n: n - 1)),
    "random bytes": ("data_batch_1",
                     lambda p: p.write_bytes(np.random.default_rng(0).bytes(500))),
    "a pickled list": ("data_batch_1", lambda p: dump(p, [1, 2, 3])),
    "no data key": ("data_batch_1", lambda p: dump(p, batch(data=None))),
    "no labels key": ("data_batch_2", lambda p: dump(p, batch(labels=None))),
    "data of 100 columns": ("data_batch_1",
                            lambda p: dump(p, batch(data=np.zeros((40, 100), np.uint8)))),
    "data as floats": ("data_batch_1", lambda p: dump(p, batch(data=np.zeros((40, 3072))))),
    "data one-dimensional": ("data_batch_1",
                             lambda p: dump(p, batch(data=np.zeros(3072, np.uint8)))),
    "data a list": ("data_batch_1", lambda p: dump(p, batch(data=[[0] * 3072] * 40))),
    "fewer labels than images": ("data_batch_1", lambda p: dump(p, batch(labels=[0] * 39))),
    "label 10 of 10 classes": ("data_batch_1", lambda p: dump(p, batch(labels=[10] * 40))),
    "label -1": ("test_batch", lambda p: dump(p, batch(labels=[-1] * 40))),
    "labels as strings": ("data_batch_1", lambda p: dump(p, batch(labels=["cat"] * 40))),
    "meta without label_names": ("batches.meta", lambda p: dump(p, {b"num_vis": 3072})),
    "meta with one class": ("batches.meta", lambda p: dump(p, {b"label_names": [b"cat"]})),
    "a pickle that runs code": ("data_batch_1", lambda p: dump(p, Evil())),
    "a folder instead of a file": ("data_batch_1", lambda p: (p.unlink(), p.mkdir())),
}


@pytest.mark.parametrize("damage", CIFAR_DAMAGE, ids=list(CIFAR_DAMAGE))
def test_damaged_cifar_python_batches(tmp_path, damage):
    name, act = CIFAR_DAMAGE[damage]
    folder = write_cifar_python(tmp_path / "data", n_per_batch=40)
    act(folder / name)
    res = train(tmp_path, RICH, tmp_path / "data")
    assert_clean_error(res, "cifar-10-batches-py")
    assert "pwned" not in res.output


MAT_DAMAGE = {
    "truncated .mat": ("data_batch_1.mat", lambda p: truncate(p, lambda n: n // 3)),
    "empty .mat": ("data_batch_2.mat", lambda p: p.write_bytes(b"")),
    ".mat of text": ("test_batch.mat", lambda p: p.write_text("not a mat file\n" * 20)),
    "meta .mat missing": ("batches.meta.mat", lambda p: p.unlink()),
}


@pytest.mark.parametrize("damage", MAT_DAMAGE, ids=list(MAT_DAMAGE))
def test_damaged_cifar_matlab_batches(tmp_path, damage):
    name, act = MAT_DAMAGE[damage]
    folder = write_cifar_matlab(tmp_path / "data", n_per_batch=40)
    act(folder / name)
    cfg = {**RICH, "data": {**RICH["data"], "format": "matlab"}}
    assert_clean_error(train(tmp_path, cfg, tmp_path / "data"), folder / name)


def test_too_few_images_for_the_config(tmp_path):
    write_cifar_python(tmp_path / "data", n_per_batch=40)
    cfg = {**RICH, "data": {**RICH["data"], "n_train": 41}}
    assert_clean_error(train(tmp_path, cfg, tmp_path / "data"), "n_train=41")
    cfg = {**RICH, "train": {**RICH["train"], "batch_size": 41}}
    assert_clean_error(train(tmp_path, cfg, tmp_path / "data"), "train.batch_size: 41")


# ---------------------------------------------------------------------------- names files

def names_rows():
    return [(f"Name{chr(97 + i % 26)}{'xyz'[k % 3]}", k + 1) for k in range(4) for i in range(8)]


NAMES_DAMAGE = {
    "ascii_names.txt empty": ("ascii_names.txt", b""),
    "ascii_names.txt not UTF-8": ("ascii_names.txt", b"Nam\xe9 1\nOther 2\n"),
    "a line without a label": ("ascii_names.txt", b"Smith 1\nJones\n"),
    "a line with only a label": ("ascii_names.txt", b"Smith 1\n  3\n"),
    "label 99": ("ascii_names.txt", b"Smith 1\nJones 99\n"),
    "label 0": ("ascii_names.txt", b"Smith 0\n"),
    "category_labels.txt empty": ("category_labels.txt", b"\n\n"),
    "category line out of order": ("category_labels.txt", b"1 Arabic\n3 Czech\n"),
    "category line without a name": ("category_labels.txt", b"1 Arabic\n2\n"),
    "validation index 999": ("Validation_Inds.txt", b"1 2 999 "),
    "validation index 0": ("Validation_Inds.txt", b"0 1 2"),
    "validation index not a number": ("Validation_Inds.txt", b"1 2 three"),
    "validation index negative": ("Validation_Inds.txt", b"1 -2"),
    "validation index repeated": ("Validation_Inds.txt", b"1 2 2"),
    "validation file empty": ("Validation_Inds.txt", b"   \n"),
    "validation file binary": ("Validation_Inds.txt", b"\x00\xff\xfe\x01"),
}


@pytest.mark.parametrize("damage", NAMES_DAMAGE, ids=list(NAMES_DAMAGE))
def test_damaged_names_files(tmp_path, damage):
    name, content = NAMES_DAMAGE[damage]
    folder = write_names_course(tmp_path / "data", rows=names_rows(), val_per_class=2)
    (folder / name).write_bytes(content)
    assert_clean_error(train(tmp_path, NAMES, tmp_path / "data"), folder / name)


def test_validation_indices_that_leave_nothing_to_train_on(tmp_path):
    rows = names_rows()
    write_names_course(tmp_path / "data", rows=rows, val_inds=list(range(1, len(rows) + 1)))
    res = train(tmp_path, NAMES, tmp_path / "data")
    assert_clean_error(res, "Validation_Inds.txt", "no names to train on")


def test_missing_names_files(tmp_path):
    folder = write_names_course(tmp_path / "data", rows=names_rows(), val_per_class=2)
    (folder / "Validation_Inds.txt").unlink()
    assert_clean_error(train(tmp_path, NAMES, tmp_path / "data"), folder / "Validation_Inds.txt")
    (folder / "category_labels.txt").unlink()
    assert_clean_error(train(tmp_path, NAMES, tmp_path / "data"), folder / "category_labels.txt")
    (folder / "ascii_names.txt").unlink()
    assert_clean_error(train(tmp_path, NAMES, tmp_path / "data"), "names data not found")


# ---------------------------------------------------------------------------- checkpoints

@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped at step 9 (checkpoint there), and a finished run of another config."""
    root = tmp_path_factory.mktemp("stopped")
    data = write_cifar_python(root / "data", n_per_batch=40).parent
    stop = StopFlag()

    class StopAt9(Reporter):
        def on_step(self, step, lr, loss):
            if step == 9:
                stop.signum = signal.SIGINT

    with pytest.raises(experiment.RunInterrupted) as e:
        experiment.start(validate(RICH), [], data, root / "runs", StopAt9(), stop)
    other_cfg = {**RICH, "name": "other", "model": {**RICH["model"], "hidden": [7]}}
    other, _ = experiment.start(validate(other_cfg), [], data, root / "other")
    return e.value.run, other, data


@pytest.fixture
def run(stopped, tmp_path, monkeypatch):
    """A fresh copy of the stopped run to damage."""
    template, _, data = stopped
    monkeypatch.setenv("DL2424_DATA_DIR", str(data))
    return shutil.copytree(template, tmp_path / template.name)


def rewrite(npz, change):
    """Rewrite a checkpoint's entries through change(dict of arrays) -> dict of arrays."""
    with np.load(npz, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    entries = change(entries)
    with open(npz, "wb") as f:
        np.savez(f, **entries)


def with_meta(**change):
    def apply(entries):
        meta = json.loads(str(entries["meta"]))
        meta.update(change)
        return entries | {"meta": np.array(json.dumps(meta))}
    return apply


def flip_middle_byte(p):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


CHECKPOINT_DAMAGE = {
    "missing": lambda p, other: p.unlink(),
    "empty": lambda p, other: p.write_bytes(b""),
    "truncated to 10 bytes": lambda p, other: truncate(p, lambda n: 10),
    "truncated to half": lambda p, other: truncate(p, lambda n: n // 2),
    "last byte cut": lambda p, other: truncate(p, lambda n: n - 1),
    "a flipped byte": lambda p, other: flip_middle_byte(p),
    "random bytes": lambda p, other: p.write_bytes(np.random.default_rng(1).bytes(2000)),
    "a zip of text": lambda p, other: zipfile.ZipFile(p, "w").writestr("a.txt", "hello"),
    "no meta": lambda p, other: rewrite(p, lambda e: {k: v for k, v in e.items()
                                                       if k != "meta"}),
    "meta not JSON": lambda p, other: rewrite(p, lambda e: e | {"meta": np.array("{step:")}),
    "meta a list": lambda p, other: rewrite(p, lambda e: e | {"meta": np.array("[1, 2]")}),
    "meta without step": lambda p, other: rewrite(p, with_meta(step=None)),
    "step past the end": lambda p, other: rewrite(p, with_meta(step=10**6)),
    "meta without sampled counts": lambda p, other: rewrite(
        p, lambda e: e | {"meta": np.array(json.dumps(
            {k: v for k, v in json.loads(str(e["meta"])).items() if k != "sampled"}))}),
    "a weight of another shape": lambda p, other: rewrite(
        p, lambda e: e | {"params/W1": np.zeros((3072, 5), np.float32)}),
    "a weight missing": lambda p, other: rewrite(
        p, lambda e: {k: v for k, v in e.items() if k != "params/W2"}),
    "an unknown entry": lambda p, other: rewrite(p, lambda e: e | {"extra/x": np.zeros(2)}),
    "a pickled object entry": lambda p, other: rewrite(
        p, lambda e: e | {"params/W1": np.array([{"a": 1}], dtype=object)}),
    "from another architecture": lambda p, other: shutil.copy(other / "checkpoint.npz", p),
    "a folder": lambda p, other: (p.unlink(), p.mkdir()),
}


@pytest.mark.parametrize("damage", CHECKPOINT_DAMAGE, ids=list(CHECKPOINT_DAMAGE))
def test_damaged_checkpoint_resume(run, stopped, damage):
    ckpt = run / "checkpoint.npz"
    CHECKPOINT_DAMAGE[damage](ckpt, stopped[1])
    before = snapshot(run)
    res = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert_clean_error(res, run)
    assert snapshot(run) == before  # nothing written, truncated or deleted


def test_the_undamaged_copy_resumes(run):
    """The control for the cases above: the same copy, not damaged, resumes to the end."""
    res = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


# ---------------------------------------------------------------------------- run folders

def drop_row(step):
    def apply(run):
        lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
        (run / "metrics.csv").write_text("".join(
            line for line in lines if not line.startswith(f"{step},")))
    return apply


FOLDER_DAMAGE = {
    "config.yaml missing": lambda run: (run / "config.yaml").unlink(),
    "config.yaml not YAML": lambda run: (run / "config.yaml").write_text("name: [oops\n"),
    "config.yaml invalid": lambda run: (run / "config.yaml").write_text("name: x\nseed: -1\n"),
    "config.yaml edited": lambda run: (run / "config.yaml").write_text(
        (run / "config.yaml").read_text().replace("seed: 7", "seed: 8")),
    "metrics.csv missing": lambda run: (run / "metrics.csv").unlink(),
    "metrics.csv garbage": lambda run: (run / "metrics.csv").write_text("step,val_acc\nx,y\n"),
    "metrics.csv not UTF-8": lambda run: (run / "metrics.csv").write_bytes(b"\xff\xfe\x00"),
    "a metrics row missing": drop_row(4),
}


@pytest.mark.parametrize("damage", FOLDER_DAMAGE, ids=list(FOLDER_DAMAGE))
def test_damaged_run_folder_resume(run, damage):
    FOLDER_DAMAGE[damage](run)
    before = snapshot(run)
    res = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert_clean_error(res, run)
    assert snapshot(run) == before


@pytest.mark.parametrize("what", ["no such folder", "a file", "an empty folder",
                                  "the runs folder itself"])
def test_not_a_run_folder(run, tmp_path, what):
    target = {"no such folder": tmp_path / "nope", "a file": run / "summary.json",
              "an empty folder": tmp_path / "empty", "the runs folder itself": run.parent}[what]
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["train", "--resume", str(target), "--quiet"])
    assert_clean_error(res, target)


def test_missing_data_at_resume_changes_nothing(run, tmp_path, monkeypatch):
    monkeypatch.setenv("DL2424_DATA_DIR", str(tmp_path / "moved"))
    before = snapshot(run)
    assert_clean_error(runner.invoke(app, ["train", "--resume", str(run), "--quiet"]),
                       "CIFAR-10 batches not found")
    assert snapshot(run) == before


def test_a_damaged_summary_does_not_block_resume(run):
    """summary.json is a record, not state: the checkpoint says where to continue."""
    (run / "summary.json").write_text('{"status": "runn')
    res = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
