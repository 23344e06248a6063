"""Fuzzing the config path: valid configs, mutated (keys deleted or added, wrong types,
out-of-range numbers, strings in numeric fields, nested garbage, broken files). Every outcome
is either a validated experiment that survives the run folder's round trip, or one UserError
naming the file; never another exception. A sample goes through the CLI (exit 2, no traceback,
nothing under runs/), and small valid ones through build() and two updates."""

import copy
import math
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dl2424.build import build
from dl2424.cli import app
from dl2424.config import apply_overrides, compose, load_experiment, validate
from dl2424.errors import UserError
from dl2424.trainer import Diverged, Trainer

from .fixtures import write_cifar_python, write_names_course
from .runcheck import RICH

runner = CliRunner()

SHIPPED = sorted(p for p in (Path(__file__).parent.parent / "configs").glob("*.yaml")
                 if not p.name.startswith("search_"))
SMALL = [  # fit the fixture data: 40 images per CIFAR batch, 4 x 30 names
    RICH,
    {"name": "names", "data": {"type": "names"},
     "model": {"type": "charcnn", "layers": [{"filters": 3, "width": 2}]},
     "optimizer": {"type": "momentum", "lr": 0.01}, "sampler": "balanced",
     "train": {"batch_size": 8, "steps": 2, "eval_train_subset": 10}},
    {"name": "cnn", "data": {"type": "cifar10", "n_train": 16},
     "model": {"type": "cnn", "layers": [2, "M"], "hidden": [4]},
     "optimizer": {"type": "adam", "lr": 0.001}, "train": {"batch_size": 4, "epochs": 1}},
]
BASES = [compose(p) for p in SHIPPED] + SMALL  # with their base: files merged in

# No shrinking: a failure prints the raw example at once instead of minutes later.
settings.register_profile("fuzz", derandomize=True, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck), print_blob=False,
                          phases=[Phase.explicit, Phase.generate])
FUZZ = settings(settings.get_profile("fuzz"), max_examples=1000)

# ---------------------------------------------------------------------------- strategies

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "0.01", "1e-3", "ten", "null", "~", "yes", "-1", "nan", ".inf",
                     "1_000", "[1, 2]", "{a: 1}", "relu", "sgd", "cifar10", "mlp", "type"]),
)
GARBAGE = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
NUMBERS = st.sampled_from([0, -1, -0.5, 1e-300, 0.5, 1, 2, 3, 1000, 10**12, 10**30, 1e308,
                           float("nan"), float("inf"), float("-inf"), True, "3", "0.1", "x"])
NEW_KEYS = st.one_of(st.sampled_from(["colour", "lr", "epochs", "typo", "Type", "hidden_",
                                      "steps ", "", "type", "params", "0"]), st.text(max_size=8))


def nodes(tree, prefix=()):
    """Paths to every value inside nested dicts/lists."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for k, v in items:
        yield (*prefix, k)
        if isinstance(v, dict | list):
            yield from nodes(v, (*prefix, k))


def containers(tree, prefix=()):
    """Paths to every dict (where a key can be added), the root included."""
    if isinstance(tree, dict):
        yield prefix
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for k, v in items:
        if isinstance(v, dict | list):
            yield from containers(v, (*prefix, k))


def at(tree, path):
    for k in path:
        tree = tree[k]
    return tree


@st.composite
def mutated(draw):
    """A base config with 1-3 mutations, as the bytes of a YAML file."""
    cfg = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        kind = draw(st.sampled_from(["delete", "add", "garbage", "number", "string",
                                     "container"]))
        paths = list(nodes(cfg))
        if kind == "add" or not paths:
            where = at(cfg, draw(st.sampled_from(list(containers(cfg)))))
            where[draw(NEW_KEYS)] = draw(GARBAGE)
            continue
        path = draw(st.sampled_from(paths))
        parent, key = at(cfg, path[:-1]), path[-1]
        if kind == "delete":
            del parent[key]
        elif kind == "garbage":
            parent[key] = draw(GARBAGE)
        elif kind == "number":
            old = parent[key]
            scale = draw(st.sampled_from([-1, 0, 1e-9, 0.5, 2, 1e9]))
            parent[key] = (old * scale if isinstance(old, int | float) and
                           not isinstance(old, bool) and draw(st.booleans())
                           else draw(NUMBERS))
        elif kind == "string":
            parent[key] = str(parent[key])
        else:  # a mapping becomes a list or a scalar, or the other way round
            parent[key] = draw(st.sampled_from([[parent[key]], [], {}, "x", 0]))
    text = yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False)
    return draw(broken(text))


@st.composite
def broken(draw, text: str):
    """Usually the YAML as it is; sometimes a file that is not a config at all."""
    how = draw(st.sampled_from(["as is"] * 10 + ["truncate", "empty", "not yaml", "list",
                                                  "scalar", "non-utf8", "binary", "deep"]))
    data = text.encode()
    if how == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if how == "empty":
        return draw(st.sampled_from([b"", b"   \n", b"# only a comment\n", b"---\n"]))
    if how == "not yaml":
        return draw(st.sampled_from([b"{", b"a: [1, 2", b"key: value: other", b"\t- x",
                                     b"@", b"name: `x`", b"a:\n  b: 1\n c: 2", b"\x00"]))
    if how == "list":
        return yaml.safe_dump([yaml.safe_load(text)]).encode()
    if how == "scalar":
        return draw(st.sampled_from([b"42", b"hello", b"3.5", b"true", b"'quoted'"]))
    if how == "non-utf8":
        i = draw(st.integers(0, len(data)))
        return data[:i] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe9", b"\x80"])) + data[i:]
    if how == "binary":
        return draw(st.binary(max_size=64))
    if how == "deep":
        n = draw(st.sampled_from([20, 200]))  # 700+ levels: test_deep_nesting_is_refused
        return b"name: " + b"[" * n + b"]" * n
    return data


# ---------------------------------------------------------------------------- properties

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def load_or_error(file: Path):
    """The experiment, or None after checking the UserError is a clean one."""
    try:
        return load_experiment(file)
    except UserError as e:
        msg = str(e)
        assert msg.startswith(str(file)), msg  # says where
        assert len(msg.splitlines()) >= 1 and "Traceback" not in msg
        return None


def assert_round_trips(exp):
    """What resume does: the resolved config written to the run folder validates again to
    the same experiment, with the same digest (else the checkpoint would not match)."""
    dumped = yaml.safe_dump(exp.dump(), sort_keys=False)
    again = validate(yaml.safe_load(dumped), "config.yaml")
    assert again == exp and again.digest() == exp.digest()


@pytest.mark.slow
def test_mutated_configs_validate_or_fail_cleanly(workdir, capsys):
    counts = Counter()

    @FUZZ
    @given(data=mutated())
    def check(data):
        file = workdir / "cfg.yaml"
        file.write_bytes(data)
        exp = load_or_error(file)
        counts["tried"] += 1
        if exp is None:
            counts["clean error"] += 1
            return
        counts["valid"] += 1
        assert_round_trips(exp)

    check()
    with capsys.disabled():
        print(f"\nconfig fuzz: {counts['tried']} mutated configs tried, {counts['valid']} "
              f"valid, {counts['clean error']} clean UserErrors, no other exception")
    assert counts["tried"] >= 1000
    assert counts["valid"] >= 50 and counts["clean error"] >= 500  # both outcomes exercised


OVERRIDE_KEYS = st.sampled_from(["seed", "name", "train.epochs", "train.batch_size",
                                 "model.hidden", "model.l2", "optimizer.lr", "optimizer",
                                 "data.augment.flip", "schedule.type", "model.hidden.0",
                                 "train", "a.b.c", "", ".", "seed.x", "train..steps"])
OVERRIDE_VALUES = st.one_of(
    st.sampled_from(["1", "-1", "0.5", "1e9", "nan", "[1, 2]", "{type: adam}", "", "[",
                     "x: y: z", "\x07", "'", "null", "~", "[" * 200]),
    st.text(max_size=10))


@settings(settings.get_profile("fuzz"), max_examples=300)
@given(base=st.sampled_from(BASES), items=st.lists(
    st.tuples(OVERRIDE_KEYS, st.sampled_from(["=", "", "=="]), OVERRIDE_VALUES), max_size=3))
def test_set_overrides_validate_or_fail_cleanly(base, items):
    overrides = [k + sep + v for k, sep, v in items]
    try:
        exp = validate(apply_overrides(copy.deepcopy(base), overrides), "cfg.yaml")
    except UserError as e:
        assert str(e).startswith(("--set", "cfg.yaml")), str(e)
        return
    assert_round_trips(exp)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar_python(root, n_per_batch=40)
    write_names_course(root)
    return root


@pytest.mark.slow
@settings(settings.get_profile("fuzz"), max_examples=60)
@given(data=mutated())
def test_cli_sample_exits_2_without_traceback_or_run_folder(workdir, data, data_dir):
    """Through `dl2424 train`: invalid configs exit 2; valid ones get as far as data loading,
    where an empty data dir stops them with exit 2 too. Nothing is ever created."""
    file = workdir / "cli.yaml"
    file.write_bytes(data)
    runs = workdir / "runs"
    res = runner.invoke(app, ["train", str(file), "--runs-dir", str(runs), "--quiet",
                              "--data-dir", str(workdir / "no-data")])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output and "error:" in res.output
    assert not runs.exists()


@pytest.mark.parametrize("text", [b"name: " + b"[" * 700 + b"]" * 700,
                                  b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(800))])
def test_deep_nesting_is_refused(workdir, text):
    file = workdir / "deep.yaml"
    file.write_bytes(text)
    assert load_or_error(file) is None
    with pytest.raises(UserError, match="nested too deeply|not valid YAML"):
        apply_overrides({}, ["seed=" + "[" * 700])


SMALL_VALUES = {  # same type as the value replaced, mostly: valid but unusual
    bool: st.booleans(),
    int: st.sampled_from([0, 1, 2, 3, 4, 7, 64, -1]),
    float: st.sampled_from([0.0, 1e-9, 0.5, 0.999, 1.0, 1.5, 64.0]),
    str: st.sampled_from(["relu", "leaky_relu", "sgd", "nesterov", "adam", "balanced",
                          "sequential", "cyclic", "step", "linear", "xavier", "gaussian",
                          "multiclass_svm", "M", "float64", "all", "scale", "center",
                          "tutorial", "course", "matlab"]),
    list: st.sampled_from([[], [1], [0], [3, 2], ["M"], [{"filters": 2, "width": 9}]]),
}


@st.composite
def small_mutated(draw):
    """A small config with 1-3 values changed to small, odd ones (or keys deleted): cheap to
    build, and mostly valid, so the builders and the first updates see them."""
    cfg = copy.deepcopy(draw(st.sampled_from(SMALL)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(nodes(cfg))))
        parent, key = at(cfg, path[:-1]), path[-1]
        kind = type(parent[key])
        if kind in SMALL_VALUES and draw(st.integers(0, 4)):
            parent[key] = draw(SMALL_VALUES[kind])
        elif isinstance(parent, dict):
            del parent[key]
    return cfg


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to Diverged
def test_small_valid_configs_build_and_train_or_fail_cleanly(data_dir, capsys):
    """Valid but unusual values must also fail, if at all, with a UserError: in the data
    loader, the model builder, the sampler or the first updates."""
    counts = Counter()

    @settings(settings.get_profile("fuzz"), max_examples=120)
    @given(cfg=small_mutated())
    def check(cfg):
        counts["tried"] += 1
        try:
            setup = build(validate(cfg), data_dir)
        except UserError:
            counts["clean error"] += 1
            return
        trainer = Trainer(setup, None)
        try:
            for _ in range(min(2, setup.total_steps)):
                trainer.train_step()
            row = trainer.evaluate_now()
        except Diverged as e:  # e.g. lr 64 or a gaussian std of 64: the CLI's exit status 1
            assert str(e).startswith("step ")
            counts["diverged"] += 1
            return
        counts["trained"] += 1
        assert 0 <= row["val_acc"] <= 1 and math.isfinite(row["val_loss"])

    check()
    with capsys.disabled():
        print(f"\nbuild fuzz: {counts['tried']} small configs, {counts['trained']} built and "
              f"trained, {counts['diverged']} diverged, {counts['clean error']} clean UserErrors")
    assert counts["trained"] >= 30 and counts["clean error"] >= 30

