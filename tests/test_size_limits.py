"""Sizes are checked before anything is allocated or looped over (issue 12, category 4).

Before: `train.cycles: 10**12` hung in a loop over cycles, `steps: 10**15` ran "forever",
huge layers ended in a MemoryError traceback (some after allocating gigabytes), and a config,
a search base or a checkpoint header could make dl2424 read or allocate without bound.
Memory here is an estimate from the config (dl2424.limits), refused beyond the limit."""

import io
import json
import shutil
import signal
import zipfile

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dl2424 import experiment, limits
from dl2424.cli import app
from dl2424.config import validate
from dl2424.data.bundle import DataInfo

runner = CliRunner()

MLP = {"name": "big", "data": {"type": "cifar10", "split": "course"},
       "model": {"type": "mlp", "hidden": [8]}, "optimizer": {"type": "sgd", "lr": 0.01},
       "train": {"batch_size": 10, "steps": 2}}
CHAR = {"name": "big", "data": {"type": "names"},
        "model": {"type": "charcnn", "layers": [{"filters": 2, "width": 3}]},
        "optimizer": {"type": "sgd", "lr": 0.01}, "train": {"batch_size": 8, "steps": 2}}
CNN = {"name": "big", "data": {"type": "cifar10", "split": "course"},
       "model": {"type": "cnn", "layers": [4, "M"]}, "optimizer": {"type": "sgd", "lr": 0.01},
       "train": {"batch_size": 8, "steps": 2}}
CYCLIC = {**MLP, "optimizer": "sgd", "schedule": {"type": "cyclic", "n_s": 10},
          "train": {"batch_size": 10, "cycles": 1}}


@pytest.fixture(autouse=True)
def deadline():
    """A probe that would hang (a loop over 10^12 cycles) fails after 60 s instead."""
    def fail(signum, frame):
        raise TimeoutError("took more than 60 s")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def train(env, cfg, *sets):
    (env / "c.yaml").write_text(yaml.safe_dump(cfg))
    args = ["train", str(env / "c.yaml"), "--quiet", "--runs-dir", str(env / "runs")]
    return runner.invoke(app, args + [a for s in sets for a in ("--set", s)])


def refused(res, *words):
    assert res.exit_code == 2, (res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    for w in words:
        assert w in res.output, res.output


@pytest.mark.parametrize("cfg,override", [
    (MLP, "model.hidden=[1000000000]"),
    (MLP, "model.hidden=[100000, 100000]"),
    (CNN, "model.layers=[100000000]"),
    (CHAR, "model.layers.0.filters=1000000000"),
    (CHAR, "model.layers.0.padding=1000000000"),
    (CHAR, "model={type: rnn_classifier, hidden: 1000000}"),
    (CNN, "model={type: patchnet, nh: 1000000000}"),
    (MLP, "train.batch_size=40"),  # fine alone; with 10^8 hidden units not (next line)
])
def test_models_too_big_for_memory_are_refused_before_allocation(env, cfg, override,
                                                                 monkeypatch):
    if override == "train.batch_size=40":
        override = "model.hidden=[30000000]"
    allocated = []
    real_zeros = np.zeros
    monkeypatch.setattr(np, "zeros", lambda shape, *a, **k: allocated.append(shape)
                        or real_zeros(shape, *a, **k))
    res = train(env, cfg, override)
    refused(res, "memory", "limit", "parameters")
    assert not any(np.prod(s, dtype=float) > 1e7 for s in allocated if s is not None)
    assert not (env / "runs").exists()


def test_the_limit_can_be_set_and_the_message_gives_both_numbers(env, monkeypatch):
    monkeypatch.setenv("DL2424_MEMORY_LIMIT", "4M")
    res = train(env, MLP, "model.hidden=[1000]")  # 3.1 M parameters: about 60 MiB
    refused(res, "DL2424_MEMORY_LIMIT", "4.0 MiB", "3,083,010 parameters")
    assert train(env, MLP).exit_code == 0  # 24 k parameters fit


def test_estimates_match_what_the_models_allocate(fixture_data):
    """The estimate is the model's own count of parameters (an upper bound within 1%)."""
    from dl2424.build import build_model

    cifar = DataInfo((3072,), [str(i) for i in range(10)], {"image_shape": [3, 32, 32]})
    names = DataInfo((7,), ["a", "b", "c"], {"vocab": 5})
    text = DataInfo((10,), [], {"task": "lm", "vocab": 21, "n_inputs": 21})
    cases = [(MLP, cifar, {"hidden": [8, 6], "batchnorm": True}),
             (CNN, cifar, {"layers": [4, "M", 6], "hidden": [5]}),
             (CHAR, names, {"layers": [{"filters": 3, "width": 2, "pool": 2},
                                       {"filters": 2, "width": 2, "padding": 1}]}),
             (CNN, cifar, {"type": "patchnet", "f": 4, "nf": 3, "nh": 7, "bias": True}),
             (CHAR, names, {"type": "rnn_classifier", "hidden": 6, "cell": "lstm"}),
             (CHAR, text, {"type": "rnn", "hidden": 5})]
    for cfg, info, over in cases:
        model_cfg = {"type": over.pop("type")} if "type" in over else cfg["model"]
        exp = validate({**cfg, "model": {**model_cfg, **over}})
        model = build_model(exp, info)
        fp = exp.model.params.footprint(info)
        n_state = sum(v.size for v in model.state.values())
        assert model.n_params() <= fp.params <= 1.01 * (model.n_params() + n_state), over


@pytest.mark.parametrize("cfg,override", [
    (CYCLIC, "train.cycles=1000000000000"),
    (CYCLIC, "schedule.double_every_cycle=true"),
    (MLP, "train.steps=1000000000000000"),
    (MLP, "train.epochs=1000000000000"),
])
def test_absurd_lengths_are_refused_at_once(env, cfg, override):
    sets = [override] + (["train.cycles=1000000000000"] if "double" in override else [])
    refused(train(env, cfg, *sets), "update steps", "100,000,000")


def test_too_many_evaluations_are_refused(env):
    refused(train(env, MLP, "train.steps=1000000", "train.eval_every=1"), "train.eval_every",
            "evaluations")


def test_a_config_that_never_ends_is_refused(env):
    res = runner.invoke(app, ["train", "/dev/zero"])
    refused(res, "/dev/zero", "too big")


@pytest.mark.parametrize("spec", ["base", "spec"])
def test_a_search_spec_or_base_that_never_ends(env, spec):
    (env / "s.yaml").write_text(yaml.safe_dump({"base": "/dev/zero",
                                                "space": {"seed": {"grid": [1]}},
                                                "method": "grid"}))
    path = env / "s.yaml" if spec == "base" else "/dev/zero"
    res = runner.invoke(app, ["search", str(path), "--sweeps-dir", str(env / "sw")])
    refused(res, "/dev/zero", "too big")


def _forged(file, key, shape):
    """Rewrite one npz entry with an npy header claiming `shape` (float32) over no data."""
    with zipfile.ZipFile(file) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    entries[f"{key}.npy"] = buf.getvalue() + b"\0" * 64
    with zipfile.ZipFile(file, "w") as z:
        for n, data in entries.items():
            z.writestr(n, data)


@pytest.fixture(scope="module")
def char_run(fixture_data, tmp_path_factory):
    return experiment.start(validate(CHAR), [], fixture_data, tmp_path_factory.mktemp("r"))[0]


@pytest.mark.parametrize("command", ["predict", "resume"])
def test_a_checkpoint_header_claiming_terabytes(char_run, tmp_path, monkeypatch, fixture_data,
                                                command):
    monkeypatch.setenv("DL2424_DATA_DIR", str(fixture_data))
    run = tmp_path / "r"
    shutil.copytree(char_run, run)
    s = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps(s | {"status": "interrupted"}))
    for name in ("best.npz", "checkpoint.npz"):
        _forged(run / name, "params/W", (1 << 20, 1 << 20))  # 4 TiB of float32
    args = (["predict", "--run", str(run), "--name", "abc"] if command == "predict"
            else ["train", "--resume", str(run), "--quiet"])
    refused(runner.invoke(app, args), "claims", "4.0 TiB")


def test_a_config_edited_to_a_huge_model_is_refused_by_predict(char_run, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(char_run, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["layers"][0]["filters"] = 10**9
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    refused(runner.invoke(app, ["predict", "--run", str(run), "--name", "abc"]), "memory")


def test_data_json_claiming_a_huge_input_is_refused_by_predict(char_run, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(char_run, run)
    d = json.loads((run / "data.json").read_text())
    d["meta"]["vocab"] = 10**9
    d["encoder"]["alphabet"] = d["encoder"]["alphabet"]  # now disagrees with vocab too
    (run / "data.json").write_text(json.dumps(d))
    refused(runner.invoke(app, ["predict", "--run", str(run), "--name", "abc"]), "data.json")


def test_sizes_print_readably():
    assert limits.human(4 << 40) == "4.0 TiB" and limits.human(512) == "512 bytes"


def test_a_400_digit_size_is_refused_not_an_overflow(env):
    res = train(env, CHAR, "model.layers.0.padding=" + "9" * 400)
    refused(res, "memory", "~10^")
