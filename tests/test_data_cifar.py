"""CIFAR-10 loading: both file formats, split schemes, preprocessing, augmentation, errors."""

import pickle

import numpy as np
import pydantic
import pytest

from dl2424.data import cifar, load_dataset
from dl2424.errors import UserError
from dl2424.registry import DATASETS, Spec

from .fixtures import (
    CIFAR_CLASSES,
    cifar_arrays,
    real_data_dir,
    write_cifar_matlab,
    write_cifar_python,
)

F64 = np.dtype(np.float64)


def load(root, dtype=F64, **params):
    return cifar.load(cifar.CifarParams(**params), root, dtype)


def images(X):
    return X.reshape(-1, 3, 32, 32)


# ---------------------------------------------------------------------------- formats, splits

def test_python_and_matlab_batches_give_identical_arrays(tmp_path):
    write_cifar_python(tmp_path / "a", n_per_batch=13, seed=3)
    write_cifar_matlab(tmp_path / "b", n_per_batch=13, seed=3)
    a = load(tmp_path / "a", split="all", n_val=9)
    b = load(tmp_path / "b", split="all", n_val=9)
    for sa, sb in [(a.train, b.train), (a.val, b.val), (a.test, b.test)]:
        np.testing.assert_array_equal(sa.X, sb.X)
        np.testing.assert_array_equal(sa.y, sb.y)
    assert a.info.class_names == b.info.class_names == CIFAR_CLASSES


def test_course_split_is_batch1_batch2_test(tmp_path):
    write_cifar_matlab(tmp_path, n_per_batch=11, seed=1)
    raw = cifar_arrays(n_per_batch=11, seed=1)
    b = load(tmp_path, format="matlab", preprocess="scale")
    for split, batch in [(b.train, "data_batch_1"), (b.val, "data_batch_2"),
                         (b.test, "test_batch")]:
        np.testing.assert_array_equal(split.X * 255, raw[batch][0])  # exact: k/255*255 == k
        np.testing.assert_array_equal(split.y, raw[batch][1])
    assert b.info.input_shape == (3072,)
    assert b.info.meta == {"image_shape": [3, 32, 32]}
    assert b.augment is None


def test_all_split_holds_out_the_last_n_val(tmp_path):
    write_cifar_python(tmp_path, n_per_batch=20)
    raw = cifar_arrays(n_per_batch=20)
    X = np.concatenate([raw[f"data_batch_{i}"][0] for i in range(1, 6)])
    y = np.concatenate([raw[f"data_batch_{i}"][1] for i in range(1, 6)])
    b = load(tmp_path, split="all", n_val=30, preprocess="scale")
    assert (len(b.train), len(b.val), len(b.test)) == (70, 30, 20)
    np.testing.assert_array_equal(b.train.X * 255, X[:70])
    np.testing.assert_array_equal(b.val.X * 255, X[70:])
    np.testing.assert_array_equal(b.val.y, y[70:])


def test_n_train_keeps_the_first_images(tmp_path):
    write_cifar_python(tmp_path, n_per_batch=20)
    raw = cifar_arrays(n_per_batch=20)
    b = load(tmp_path, n_train=7, preprocess="scale")
    np.testing.assert_array_equal(b.train.X * 255, raw["data_batch_1"][0][:7])
    assert len(b.val) == 20
    with pytest.raises(UserError, match="n_train=21"):
        load(tmp_path, n_train=21)


def test_n_val_errors(tmp_path):
    write_cifar_python(tmp_path, n_per_batch=4)
    with pytest.raises(pydantic.ValidationError, match="n_val applies to split: all"):
        cifar.CifarParams(n_val=10)
    with pytest.raises(UserError, match="leaves no training images"):
        load(tmp_path, split="all", n_val=20)


def test_any_number_of_images_per_batch_and_filenames_key(tmp_path):
    write_cifar_python(tmp_path, n_per_batch=7, filenames=True)
    b = load(tmp_path)
    assert (len(b.train), len(b.val), len(b.test)) == (7, 7, 7)


def test_loaded_through_the_registry(tmp_path):
    write_cifar_python(tmp_path)
    spec = Spec(type="cifar10", params=DATASETS["cifar10"].params(split="all", n_val=10))
    b = load_dataset(spec, tmp_path, "float32")
    assert b.train.X.dtype == np.float32 and b.train.X.shape == (90, 3072)


# ---------------------------------------------------------------------------- finding folders

def test_found_one_level_deeper_and_format_choice(tmp_path):
    write_cifar_python(tmp_path / "cifar-10-subset", seed=1)
    write_cifar_matlab(tmp_path / "other", seed=2)
    auto = load(tmp_path, preprocess="scale")
    np.testing.assert_array_equal(auto.train.X * 255,
                                  cifar_arrays(seed=1)["data_batch_1"][0])
    mat = load(tmp_path, format="matlab", preprocess="scale")
    np.testing.assert_array_equal(mat.train.X * 255, cifar_arrays(seed=2)["data_batch_1"][0])
    # A folder directly in data_dir wins over one a level deeper.
    write_cifar_matlab(tmp_path, seed=4)
    assert cifar.locate(tmp_path).folder == tmp_path / "cifar-10-batches-mat"


def test_missing_data_names_every_place_and_the_fetch_command(tmp_path):
    with pytest.raises(UserError) as e:
        load(tmp_path)
    msg = str(e.value)
    for place in cifar.search_places(tmp_path):
        assert place in msg
    assert str(tmp_path / "*" / "cifar-10-batches-py") in msg
    assert "dl2424 data fetch cifar10" in msg


# ---------------------------------------------------------------------------- corrupt files

def _rewrite(path, **changes):
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    for k, v in changes.items():
        if v is None:
            del d[k.encode()]
        else:
            d[k.encode()] = v
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


@pytest.mark.parametrize("damage, problem", [
    ("truncate", "not a readable CIFAR-10 python batch"),
    ("shape", "must be an N x 3072 uint8 array"),
    ("dtype", "must be an N x 3072 uint8 array"),
    ("labels_range", "label 10 of image 3 is outside 0..9"),
    ("labels_count", "must hold 20 integers"),
    ("missing_key", "missing 'labels'"),
    ("deleted", "file missing"),
])
def test_corrupt_python_batch_is_a_user_error_naming_the_file(tmp_path, damage, problem):
    folder = write_cifar_python(tmp_path)
    path = folder / "data_batch_2"
    X, y = cifar_arrays()["data_batch_2"]
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "shape":
        _rewrite(path, data=X[:, :3000])
    elif damage == "dtype":
        _rewrite(path, data=X.astype(np.float64))
    elif damage == "labels_range":
        _rewrite(path, labels=[*y[:3].tolist(), 10, *y[4:].tolist()])
    elif damage == "labels_count":
        _rewrite(path, labels=y[:5].tolist())
    elif damage == "missing_key":
        _rewrite(path, labels=None)
    else:
        path.unlink()
    with pytest.raises(UserError, match=problem) as e:
        load(tmp_path)
    assert str(path) in str(e.value)


def test_corrupt_matlab_batch_and_meta(tmp_path):
    folder = write_cifar_matlab(tmp_path)
    (folder / "test_batch.mat").write_bytes((folder / "test_batch.mat").read_bytes()[:300])
    with pytest.raises(UserError, match="test_batch.mat: not a readable CIFAR-10 .mat batch"):
        load(tmp_path)
    (folder / "batches.meta.mat").unlink()
    with pytest.raises(UserError, match="batches.meta.mat: file missing"):
        load(tmp_path)


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('code ran')",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    folder = write_cifar_python(tmp_path)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Boom(), b"labels": []}, f, protocol=2)
    with pytest.raises(UserError, match="refusing to load .*exec"):
        load(tmp_path)


# ---------------------------------------------------------------------------- preprocessing

def _train_stats(raw_train):
    X = raw_train.astype(np.float64)
    return X.mean(axis=0), X.std(axis=0)


@pytest.mark.parametrize("split", ["course", "all"])
def test_zscore_uses_training_statistics_for_every_split(tmp_path, split):
    write_cifar_python(tmp_path, n_per_batch=30)
    raw = cifar_arrays(n_per_batch=30)
    b = load(tmp_path, split=split, **({"n_val": 40} if split == "all" else {}))
    if split == "course":
        Xtr, Xva = raw["data_batch_1"][0], raw["data_batch_2"][0]
    else:
        X = np.concatenate([raw[f"data_batch_{i}"][0] for i in range(1, 6)])
        Xtr, Xva = X[:-40], X[-40:]
    mu, sd = _train_stats(Xtr)
    np.testing.assert_allclose(b.val.X, (Xva - mu) / sd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.test.X, (raw["test_batch"][0] - mu) / sd, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(b.train.X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(b.train.X.std(axis=0), 1, atol=1e-12)
    # Statistics of the validation images themselves would give a different answer.
    assert np.abs(b.val.X.mean(axis=0)).max() > 0.1


def test_center_scale_and_scale_center(tmp_path):
    write_cifar_python(tmp_path, n_per_batch=25)
    raw = cifar_arrays(n_per_batch=25)
    Xtr, Xte = raw["data_batch_1"][0].astype(np.float64), raw["test_batch"][0]
    mu = Xtr.mean(axis=0)
    np.testing.assert_allclose(load(tmp_path, preprocess="center").test.X, Xte - mu,
                               atol=1e-10)
    np.testing.assert_allclose(load(tmp_path, preprocess="scale").test.X, Xte / 255,
                               atol=1e-15)
    np.testing.assert_allclose(load(tmp_path, preprocess="scale_center").test.X,
                               Xte / 255 - (Xtr / 255).mean(axis=0), atol=1e-12)


def test_float32_conversion_and_constant_pixels(tmp_path):
    write_cifar_python(tmp_path)
    assert load(tmp_path, dtype=np.dtype(np.float32)).val.X.dtype == np.float32
    X = np.random.default_rng(0).integers(0, 256, (6, 3072)).astype(np.uint8)
    X[:, 5] = 17  # a pixel that never changes in training: std 0
    out = cifar.make_preprocess("zscore", X, F64)(X)
    assert np.isfinite(out).all() and (out[:, 5] == 0).all()


def test_feature_stats_are_exact_for_large_counts():
    X = np.full((10001, 16), 255, np.uint8)
    X[::2] = 0
    mean, std = cifar.feature_stats(X)
    p = 5000 / 10001  # fraction of 255s
    np.testing.assert_allclose(mean, 255 * p, rtol=1e-15)
    np.testing.assert_allclose(std, 255 * np.sqrt(p * (1 - p)), rtol=1e-14)


# ---------------------------------------------------------------------------- augmentation

def _shift(img, dy, dx):
    """Reference: move a (3, 32, 32) image down dy and right dx, zero fill."""
    out = np.zeros_like(img)
    out[:, max(dy, 0):32 + min(dy, 0), max(dx, 0):32 + min(dx, 0)] = \
        img[:, max(-dy, 0):32 + min(-dy, 0), max(-dx, 0):32 + min(-dx, 0)]
    return out


def test_flip_is_an_exact_mirror_and_leaves_the_input_alone():
    X = np.random.default_rng(0).normal(size=(5, 3072))
    before = X.copy()
    out = cifar.Augmenter(flip=1.0, translate=0)(X, np.random.default_rng(1))
    np.testing.assert_array_equal(images(out), images(X)[:, :, :, ::-1])
    np.testing.assert_array_equal(X, before)
    same = cifar.Augmenter(flip=0.0, translate=0)(X, np.random.default_rng(1))
    np.testing.assert_array_equal(same, X)


def test_flip_probability():
    X = np.random.default_rng(0).normal(size=(4000, 3072)).astype(np.float32)
    out = cifar.Augmenter(flip=0.3, translate=0)(X, np.random.default_rng(2))
    flipped = np.all(images(out) == images(X)[:, :, :, ::-1], axis=(1, 2, 3))
    assert out.dtype == np.float32
    assert abs(flipped.mean() - 0.3) < 0.03  # ~4 standard errors


def test_translate_shifts_content_within_range_with_zero_fill():
    X = np.random.default_rng(0).normal(size=(40, 3072))
    aug = cifar.Augmenter(flip=0.5, translate=3)
    out = images(aug(X, np.random.default_rng(5)))
    shifts = set()
    for img, res in zip(images(X), out, strict=True):
        matches = [(dy, dx, f) for dy in range(-3, 4) for dx in range(-3, 4) for f in (0, 1)
                   if np.array_equal(res, _shift(img[:, :, ::-1] if f else img, dy, dx))]
        assert len(matches) == 1
        shifts.add(matches[0][:2])
    assert len(shifts) > 10  # many different shifts were drawn


def test_each_image_gets_the_flip_and_shift_of_its_own_draws():
    # the draws are rng.random(n) < flip, then (dy, dx) = rng.integers(-t, t + 1, (2, n)):
    # a seed gives the batches it gave before the gather was rewritten
    X = np.random.default_rng(0).normal(size=(60, 3072)).astype(np.float32)
    out = images(cifar.Augmenter(flip=0.5, translate=4)(X, np.random.default_rng(9)))
    rng = np.random.default_rng(9)
    flips = rng.random(60) < 0.5
    dy, dx = rng.integers(-4, 5, size=(2, 60))
    for k, img in enumerate(images(X)):
        expected = _shift(img[:, :, ::-1] if flips[k] else img, dy[k], dx[k])
        np.testing.assert_array_equal(out[k], expected)
    assert 0 < flips.sum() < 60 and out.dtype == np.float32


def test_augmentation_is_deterministic_under_a_seed(tmp_path):
    write_cifar_python(tmp_path)
    b = load(tmp_path, augment={"flip": 0.5, "translate": 3})
    X = b.train.X
    a1 = b.augment(X, np.random.default_rng(7))
    a2 = b.augment(X, np.random.default_rng(7))
    a3 = b.augment(X, np.random.default_rng(8))
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)
    assert load(tmp_path, augment={"flip": 0.0}).augment is None
    assert pickle.loads(pickle.dumps(b.augment)) == b.augment


# ---------------------------------------------------------------------------- real data

def test_real_cifar_subset():
    root = real_data_dir()
    b = load(root, dtype=np.dtype(np.float32))
    assert (len(b.train), len(b.val), len(b.test)) == (1000, 1000, 1000)
    assert b.info.class_names == CIFAR_CLASSES
    assert set(np.unique(b.train.y)) == set(range(10))
    counts = np.bincount(b.train.y, minlength=10)
    assert counts.min() >= 79 and counts.max() <= 119  # the README: 79-119 per class per file
    np.testing.assert_allclose(b.train.X.mean(axis=0), 0, atol=1e-4)
    for i in range(1, 6):
        batch = cifar.batch_file(cifar.locate(root), f"data_batch_{i}")
        X, y = cifar.read_batch(batch, "python", 10)
        assert X.shape == (1000, 3072) and y.shape == (1000,)
    everything = load(root, split="all")
    assert (len(everything.train), len(everything.val)) == (4000, 1000)


def test_unknown_keys_are_config_errors():
    with pytest.raises(pydantic.ValidationError, match="preproces"):
        cifar.CifarParams(preproces="zscore")
    with pytest.raises(pydantic.ValidationError, match="rotate"):
        cifar.CifarParams(augment={"flip": 0.5, "rotate": 10})
    with pytest.raises(pydantic.ValidationError):
        cifar.CifarParams(augment={"flip": 1.5})
