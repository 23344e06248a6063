"""Surname data: course files, tutorial folder, encoding, soft labels, inspect, errors."""

import json
from collections import Counter, defaultdict

import numpy as np
import pydantic
import pytest

from dl2424.data import names
from dl2424.data.inspect import inspect_names
from dl2424.errors import UserError

from .fixtures import (
    COURSE_LANGUAGES,
    real_data_dir,
    synthetic_names,
    write_names_course,
    write_names_tutorial,
)

F64 = np.dtype(np.float64)

# Edge cases from the real file: a space inside a surname, a trailing space (so two spaces
# before the label), an apostrophe, capitals, a name with two labels, exact duplicates.
ROWS = [("Khoury", 1), ("Nahas", 1), ("Abel", 2), ("Abel", 3), ("De Ath", 3), ("Hyun ", 2),
        ("O'Neal", 3), ("Nahas", 1), ("Zhu", 2), ("Abel", 2), ("Smith", 3), ("Ng", 2)]
CATEGORIES = ["Arabic", "Chinese", "English"]
VAL_INDS = [2, 7, 9]  # 1-based lines: Nahas, O'Neal, Zhu


@pytest.fixture
def course(tmp_path):
    write_names_course(tmp_path, ROWS, VAL_INDS, CATEGORIES)
    return tmp_path


def load(root, dtype=F64, **params):
    return names.load(names.NamesParams(**params), root, dtype)


# ---------------------------------------------------------------------------- course format

def test_course_lines_parse_with_spaces_in_and_after_the_name(course):
    assert (course / "names" / "ascii_names.txt").read_text().splitlines()[5] == "Hyun  2"
    b = load(course)
    assert b.train.text == ["khoury", "abel", "abel", "de ath", "hyun", "nahas", "abel",
                            "smith", "ng"]
    np.testing.assert_array_equal(b.train.y, [0, 1, 2, 2, 1, 0, 1, 2, 1])
    assert b.val.text == ["nahas", "o'neal", "zhu"]
    np.testing.assert_array_equal(b.val.y, [0, 2, 1])
    assert b.test is None
    assert b.info.class_names == CATEGORIES


def test_encoding_uses_the_sorted_alphabet_and_pads_with_its_size(course):
    b = load(course)
    all_names = [n.strip().lower() for n, _ in ROWS]
    alphabet = sorted(set("".join(all_names)))
    assert alphabet[:2] == [" ", "'"]
    enc = names.Encoder.from_json(b.info.encoder)
    assert list(enc.alphabet) == alphabet
    assert enc.n_len == 6 == b.info.input_shape[0]
    assert b.info.meta == {"vocab": len(alphabet)}
    expected = [[alphabet.index(c) for c in "de ath"],
                [alphabet.index(c) for c in "hyun"] + [len(alphabet)] * 2]
    np.testing.assert_array_equal(b.train.X[3:5], expected)
    assert b.train.X.dtype == np.int64


def test_one_hot_view():
    idx = np.array([[2, 0, 3, 3], [1, 1, 2, 3]])
    oh = names.one_hot(idx, d=3)
    assert oh.shape == (2, 3, 4)
    np.testing.assert_array_equal(oh.sum(axis=1), [[1, 1, 0, 0], [1, 1, 1, 0]])
    np.testing.assert_array_equal(oh[0, :, 0], [0, 0, 1])
    np.testing.assert_array_equal(oh[1, :, 2], [0, 0, 1])
    assert oh[:, :, 3].sum() == 0  # padding column is all zeros
    assert names.one_hot(idx, 3, np.float32).dtype == np.float32


def test_soft_labels_cover_the_labels_a_name_carries_in_training(course):
    b = load(course, soft_labels=True, dtype=np.dtype(np.float32))
    T = b.train.T
    assert T.dtype == np.float32 and T.shape == (9, 3)
    np.testing.assert_allclose(T.sum(axis=1), 1)
    for i in (1, 2, 6):  # abel: Chinese twice, English once -> uniform over the two labels
        np.testing.assert_array_equal(T[i], [0, 0.5, 0.5])
    np.testing.assert_array_equal(T[0], [1, 0, 0])  # khoury
    np.testing.assert_array_equal(T[5], [1, 0, 0])  # nahas: its val copy does not count
    assert b.val.T is None
    assert load(course).train.T is None


def test_val_unseen_marks_validation_names_absent_from_training(course):
    np.testing.assert_array_equal(load(course).masks["val_unseen"], [False, True, True])


def test_inspect_names_facts(course):
    f = inspect_names(course)
    np.testing.assert_array_equal(f.train_counts, [2, 4, 3])
    np.testing.assert_array_equal(f.val_counts, [1, 1, 1])
    assert f.alphabet == "".join(sorted(set("".join(n.strip().lower() for n, _ in ROWS))))
    assert f.n_len == 6
    assert f.length_counts == {2: 1, 3: 1, 4: 4, 5: 3, 6: 3}
    assert f.duplicates == [("abel", "Chinese", 2), ("nahas", "Arabic", 2)]
    assert f.multi_label == [("abel", ["Chinese", "English"])]
    assert f.val_in_train == [("nahas", "Arabic")]
    assert f.format == "course"


# ---------------------------------------------------------------------------- encoder

def test_encoder_round_trip_through_json():
    enc = names.Encoder.fit(["abel", "de ath", "o'neal"], ["A", "B"])
    again = names.Encoder.from_json(json.loads(json.dumps(enc.to_json())))
    assert again == enc
    X = again.encode(["O'Neal", " De Ath ", "ab"])
    assert again.decode(X) == ["o'neal", "de ath", "ab"]
    np.testing.assert_array_equal(X, enc.encode(["o'neal", "de ath", "ab"]))


def test_encoder_folds_accents_and_rejects_unknown_characters():
    enc = names.Encoder.fit(["muller", "nunez"], ["German"])
    np.testing.assert_array_equal(enc.encode(["Müller", "Núñez"]), enc.encode(["muller",
                                                                              "nunez"]))
    with pytest.raises(UserError, match=r"characters 'x' are not in the alphabet.*'Mex'"):
        enc.encode(["Mex"])
    assert enc.decode(enc.encode(["Mxu-1"], drop_unknown=True)) == ["mu"]
    with pytest.raises(UserError, match="no known characters left"):
        enc.encode(["xyq"], drop_unknown=True)
    with pytest.raises(UserError, match="sorted order"):
        names.Encoder("ba", 3, ("A",))


def test_encoder_truncates_long_names():
    enc = names.Encoder.fit(["abcd", "ab"], ["A"])
    assert enc.decode(enc.encode(["abcdcba"])) == ["abcd"]
    assert enc.decode(enc.encode(["abcdcba"], truncate="last")) == ["dcba"]


# ---------------------------------------------------------------------------- tutorial format

def test_tutorial_folder_folds_accents_and_drops_other_non_ascii(tmp_path):
    write_names_tutorial(tmp_path, {"Polish": ["Łukasz", "Nowak", "Kowalski", "Wójcik"],
                                    "French": ["Béringer", "Lefèvre", "Dubois", "Rémy"]})
    b = load(tmp_path, val_per_class=1)
    assert b.info.class_names == ["French", "Polish"]  # sorted file names
    text = sorted(b.train.text + b.val.text)
    assert text == sorted(["ukasz", "nowak", "kowalski", "wojcik", "beringer", "lefevre",
                           "dubois", "remy"])
    assert b.info.meta == {"vocab": len(set("".join(text))), "non_ascii_dropped": 1}
    f = inspect_names(tmp_path, names.NamesParams(val_per_class=1))
    assert f.dropped_chars == {"ł": 1} and f.format == "tutorial"


def test_tutorial_stratified_split_is_seeded(tmp_path):
    write_names_tutorial(tmp_path)  # 4 languages x 20 names
    b = load(tmp_path, val_per_class=3, split_seed=1)
    np.testing.assert_array_equal(np.bincount(b.val.y), [3, 3, 3, 3])
    np.testing.assert_array_equal(np.bincount(b.train.y), [17, 17, 17, 17])
    assert load(tmp_path, val_per_class=3, split_seed=1).val.text == b.val.text
    assert load(tmp_path, val_per_class=3, split_seed=2).val.text != b.val.text
    np.testing.assert_array_equal(np.bincount(load(tmp_path).val.y), [14] * 4)  # default
    np.testing.assert_array_equal(np.bincount(load(tmp_path, val_fraction=0.25).val.y),
                                  [5] * 4)
    with pytest.raises(UserError, match="leaves none for training"):
        load(tmp_path, val_per_class=20)
    with pytest.raises(pydantic.ValidationError, match="not both"):
        names.NamesParams(val_per_class=2, val_fraction=0.1)


def test_format_choice_between_course_and_tutorial(tmp_path):
    write_names_course(tmp_path, ROWS, VAL_INDS, CATEGORIES)
    write_names_tutorial(tmp_path)
    assert load(tmp_path).info.class_names == CATEGORIES  # auto prefers the course files
    assert load(tmp_path, format="tutorial").info.class_names == COURSE_LANGUAGES[:4]
    with pytest.raises(UserError, match="apply to the tutorial format"):
        load(tmp_path, val_per_class=2)


def test_tutorial_folder_directly_in_names(tmp_path):
    write_names_tutorial(tmp_path, folder="names")
    assert names.locate(tmp_path) == names.Found(tmp_path / "names", "tutorial")


def test_course_files_directly_in_the_data_dir(tmp_path):
    write_names_course(tmp_path, folder=".")
    b = load(tmp_path)
    assert len(b.train) + len(b.val) == len(synthetic_names())


# ---------------------------------------------------------------------------- errors

@pytest.mark.parametrize("file, content, problem", [
    ("Validation_Inds.txt", "2 13", r"Validation_Inds.txt, line 1, item 2: line number 13 is "
                                    r"outside 1..12"),
    ("Validation_Inds.txt", "2 7\n9 2", r"line 2, item 4: line number 2 repeats item 1"),
    ("Validation_Inds.txt", "2 x7", r"item 2: 'x7' is not a line number"),
    ("Validation_Inds.txt", "\n", r"Validation_Inds.txt: the file is empty"),
    ("ascii_names.txt", "Khoury 1\nNahas 4\n", r"ascii_names.txt, line 2: label 4 is outside "
                                               r"1..3"),
    ("ascii_names.txt", "Khoury 1\nNahas\n", r"ascii_names.txt, line 2: expected 'Surname "
                                             r"Label'"),
    ("ascii_names.txt", "Khoury 1\n\nNahas 1\n", r"line 2: expected 'Surname Label'"),
    ("ascii_names.txt", "", r"ascii_names.txt: the file is empty"),
    ("category_labels.txt", "1 Arabic\n3 Chinese\n", r"category_labels.txt, line 2: expected "
                                                      r"'2 <Language>'"),
    ("category_labels.txt", "", r"category_labels.txt: the file is empty"),
])
def test_bad_course_files_are_user_errors_with_file_and_line(course, file, content, problem):
    (course / "names" / file).write_text(content)
    with pytest.raises(UserError, match=problem):
        load(course)


def test_missing_course_file_and_missing_data(course, tmp_path):
    (course / "names" / "Validation_Inds.txt").unlink()
    with pytest.raises(UserError, match="Validation_Inds.txt: file missing"):
        load(course)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as e:
        load(empty)
    for place in names.search_places(empty):
        assert place in str(e.value)
    assert "dl2424 data fetch names" in str(e.value)


def test_bad_tutorial_files(tmp_path):
    folder = write_names_tutorial(tmp_path)
    (folder / "Czech.txt").write_bytes(b"Nov\xe1k\n")  # Latin-1, not UTF-8
    with pytest.raises(UserError, match="Czech.txt: not UTF-8"):
        load(tmp_path)
    (folder / "Czech.txt").write_text("\n\n")
    with pytest.raises(UserError, match="Czech.txt: the file is empty"):
        load(tmp_path)
    (folder / "Czech.txt").write_text("Ł\n")
    with pytest.raises(UserError, match="Czech.txt: no names"):
        load(tmp_path)


# ---------------------------------------------------------------------------- real data

README_COUNTS = [2000, 268, 519, 297, 3668, 277, 724, 203, 232, 709, 991, 94, 139, 74, 9384, 100,
                 298, 73]


def test_real_course_names():
    root = real_data_dir()
    lines = (root / "names" / "ascii_names.txt").read_text().splitlines()
    b = load(root, soft_labels=True)
    assert len(lines) == 20050 == len(b.train) + len(b.val)
    assert b.info.class_names == COURSE_LANGUAGES
    np.testing.assert_array_equal(np.bincount(np.concatenate([b.train.y, b.val.y])),
                                  README_COUNTS)
    assert len(b.val) == 252
    np.testing.assert_array_equal(np.bincount(b.val.y), [14] * 18)
    assert b.info.meta["vocab"] == 28 and b.info.input_shape == (19,)
    assert np.bincount(b.train.y)[17] == 59  # Vietnamese training names, as the hand-out says
    # The ten lines with two spaces before the label parse to clean names.
    doubled = [i for i, line in enumerate(lines) if "  " in line]
    assert len(doubled) == 10 and lines[9914] == "Hyun  12"
    enc = names.Encoder.from_json(b.info.encoder)
    assert enc.encode(["Hyun"])[0, 4] == 28  # padded right after 4 characters
    # Validation names: the 1-based indices of the file, read independently.
    inds = [int(t) for t in (root / "names" / "Validation_Inds.txt").read_text().split()]
    assert b.val.text == [lines[i - 1].rsplit(None, 1)[0].strip().lower() for i in inds]
    # Names with several training labels carry soft targets; "val_unseen" excludes repeats.
    train_labels = defaultdict(set)
    for n, y in zip(b.train.text, b.train.y, strict=True):
        train_labels[n].add(int(y))
    multi = {n for n, ys in train_labels.items() if len(ys) > 1}
    assert len(multi) > 100
    assert ((b.train.T.max(axis=1) < 1) == np.isin(b.train.text, list(multi))).all()
    assert b.masks["val_unseen"].sum() == sum(n not in train_labels for n in b.val.text)


def test_real_inspect_counts_agree_with_a_plain_count():
    root = real_data_dir()
    rows = [line.rsplit(None, 1) for line in
            (root / "names" / "ascii_names.txt").read_text().splitlines()]
    rows = [(n.strip().lower(), int(k)) for n, k in rows]
    f = inspect_names(root)
    pairs = Counter(rows)
    labels = defaultdict(set)
    for n, k in rows:
        labels[n].add(k)
    assert len(f.duplicates) == sum(c > 1 for c in pairs.values())
    assert len(f.multi_label) == sum(len(v) > 1 for v in labels.values()) > 100
    assert len(f.alphabet) == 28 and f.n_len == 19
    assert sum(f.length_counts.values()) == 20050


def test_unknown_keys_are_config_errors_and_a_bom_is_ignored(tmp_path):
    with pytest.raises(pydantic.ValidationError, match="soft_label"):
        names.NamesParams(soft_label=True)
    folder = write_names_tutorial(tmp_path, {"A": ["Ab", "Ba", "Aab"], "B": ["Xy", "Yx", "Xxy"]})
    (folder / "A.txt").write_bytes("\ufeffAb\nBa\nAab\n".encode())
    b = load(tmp_path, val_per_class=1)
    assert sorted(b.train.text + b.val.text) == ["aab", "ab", "ba", "xxy", "xy", "yx"]


def test_a_class_with_no_training_names_is_refused(tmp_path):
    rows = synthetic_names(n_per_class=5, n_classes=3)
    val = [i for i, (_, label) in enumerate(rows, 1) if label == 2]
    write_names_course(tmp_path, rows=rows, val_inds=val)
    with pytest.raises(UserError, match="every name of Chinese in the validation set"):
        load(tmp_path)
