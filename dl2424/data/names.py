"""Surname -> language: the course's A3 files, or the PyTorch tutorial's folder of names.

Course files (in data_dir/names or data_dir): `ascii_names.txt` ("Surname Label" per line, the
label after the last space), `category_labels.txt` ("1 Arabic" ...), `Validation_Inds.txt`
(1-based line numbers of the validation names). Tutorial folder (data_dir/names or
data_dir/data/names): `<Language>.txt`, one UTF-8 surname per line.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from ..errors import UserError
from ..registry import DATASETS, Params
from .bundle import DataBundle, DataInfo, Split
from .paths import Found

NAME = "names"
NAMES_FILE, LABELS_FILE, VAL_FILE = "ascii_names.txt", "category_labels.txt", "Validation_Inds.txt"
COURSE_FILES = (NAMES_FILE, LABELS_FILE, VAL_FILE)
DEFAULT_VAL_PER_CLASS = 14  # as the course's Validation_Inds.txt


def normalize(name: str) -> str:
    """Strip, lowercase, and fold accents: NFD, then drop the combining marks (é -> e)."""
    decomposed = unicodedata.normalize("NFD", name.strip().lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


# Letters that Unicode does not decompose into a base letter plus marks (NFKD leaves them
# alone), and punctuation that plays the role of one the course alphabet has.
TRANSLITERATION = {
    "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "ł": "l", "đ": "d", "ð": "d", "þ": "th",
    "ı": "i", "ħ": "h", "ŧ": "t", "ŀ": "l", "ĸ": "k", "ŋ": "ng", "ſ": "s", "ə": "e",
    "’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'", "-": " ", "‐": " ", "–": " ",
}


def transliterate(name: str, alphabet: str) -> str:
    """`name` normalised, with each character outside `alphabet` spelled in it when possible:
    its NFKD decomposition without marks (ﬁ -> fi), else TRANSLITERATION (Ørsted -> orsted,
    Straße -> strasse). Characters with no spelling in the alphabet are kept as they are."""
    known = set(alphabet)
    out = []
    for c in normalize(name):
        if c not in known:
            folded = "".join(d for d in unicodedata.normalize("NFKD", c)
                             if unicodedata.category(d) != "Mn")
            for spelling in (folded, TRANSLITERATION.get(c, "")):
                if spelling and set(spelling) <= known:
                    c = spelling
                    break
        out.append(c)
    return "".join(out)


# ---------------------------------------------------------------------------- encoding

@dataclass(frozen=True)
class Encoder:
    """Names -> (n, n_len) character indices. Index i is alphabet[i]; padding is len(alphabet).

    Saved with every run (DataInfo.encoder) so `predict` needs no data files.
    """

    alphabet: str  # distinct characters sorted by code point
    n_len: int
    class_names: tuple[str, ...]

    def __post_init__(self):
        if list(self.alphabet) != sorted(set(self.alphabet)) or self.n_len < 1:
            raise UserError(f"character encoder: the alphabet must be distinct characters in "
                            f"sorted order and n_len >= 1, got {self.alphabet!r}, {self.n_len}")

    @property
    def d(self) -> int:
        """Alphabet size, the one-hot height; also the padding index."""
        return len(self.alphabet)

    @classmethod
    def fit(cls, names: list[str], class_names: list[str]) -> Encoder:
        """The alphabet and longest length of already normalised names."""
        return cls("".join(sorted(set("".join(names)))), max(map(len, names)), tuple(class_names))

    def encode(self, names: list[str], truncate: Literal["first", "last"] = "first",
               drop_unknown: bool = False) -> np.ndarray:
        """Normalise and encode names.

        Inputs:
        - names: n strings (any case; accents are folded and letters outside the alphabet
          transliterated, see `read`)
        - truncate: a name longer than n_len keeps its first or its last n_len characters
        - drop_unknown: remove characters outside the alphabet instead of raising UserError
        Returns: (n, n_len) int64 indices, right-padded with d.
        """
        clean = [self.read(s) for s in names]
        unknown = set("".join(clean)) - set(self.alphabet)
        if unknown and not drop_unknown:
            bad = [s for s, c in zip(names, clean, strict=True) if set(c) & unknown]
            raise UserError(f"characters {''.join(sorted(unknown))!r} are not in the alphabet "
                            f"{self.alphabet!r} (in: {', '.join(map(repr, bad[:5]))}); remove "
                            "them, or give --drop-unknown to leave them out")
        if unknown:
            clean = ["".join(c for c in s if c not in unknown) for s in clean]
        empty = [repr(names[i]) for i, s in enumerate(clean) if not s]
        if empty:
            raise UserError(f"no known characters left in the name(s) {', '.join(empty[:5])}")
        clean = [s[:self.n_len] if truncate == "first" else s[-self.n_len:] for s in clean]
        # Fixed-width unicode array -> code points, NUL-padded; then code point -> alphabet index.
        codes = np.array(clean, dtype=f"<U{self.n_len}").view(np.uint32)
        codes = codes.reshape(len(clean), self.n_len)
        alphabet = np.array([ord(c) for c in self.alphabet], dtype=np.uint32)
        idx = np.searchsorted(alphabet, codes).astype(np.int64)
        idx[codes == 0] = self.d
        return idx

    def read(self, name: str) -> str:
        """The name as the model reads it, before truncation: normalised, transliterated."""
        return transliterate(name, self.alphabet)

    def decode(self, indices: np.ndarray) -> list[str]:
        """(n, n_len) indices -> the n strings (padding dropped)."""
        chars = np.array([*self.alphabet, ""], dtype=object)[indices]
        return ["".join(row) for row in chars]

    def to_json(self) -> dict:
        return {"alphabet": list(self.alphabet), "n_len": self.n_len,
                "class_names": list(self.class_names)}

    @classmethod
    def from_json(cls, d: dict) -> Encoder:
        return cls("".join(d["alphabet"]), int(d["n_len"]), tuple(d["class_names"]))

    @classmethod
    def of(cls, info: DataInfo, where: str = "data.json") -> Encoder:
        """The encoder saved in `info`, checked against the rest of it: the model reads
        indices 0..vocab (meta vocab) of names n_len long (input_shape) into the classes of
        class_names, so an encoder that disagrees would index outside the model's one-hot
        input (garbage, or a crash) or mislabel every answer."""
        e = info.encoder
        problem = None
        if not isinstance(e, dict):
            problem = "it has no character encoder"
        elif (not isinstance(e.get("alphabet"), list | str)
              or not all(isinstance(c, str) and len(c) == 1 for c in e["alphabet"])):
            problem = "encoder alphabet is not a list of single characters"
        elif not isinstance(e.get("n_len"), int) or isinstance(e["n_len"], bool):
            problem = f"encoder n_len {e.get('n_len')!r} is not a length"
        elif e.get("class_names") != info.class_names:
            problem = "encoder class_names differ from class_names"
        elif list(info.input_shape) != [e["n_len"]]:
            problem = f"encoder n_len {e['n_len']} differs from input_shape {info.input_shape}"
        elif info.meta.get("vocab") != len(e["alphabet"]):
            problem = (f"encoder alphabet has {len(e['alphabet'])} characters, the model's "
                       f"vocabulary (meta vocab) {info.meta.get('vocab')!r}")
        if problem:
            raise UserError(f"{where}: {problem}; the run folder was damaged or edited; "
                            "retrain, or restore data.json from a copy")
        try:
            return cls.from_json(e)
        except UserError as err:
            raise UserError(f"{where}: {err}") from None


def one_hot(indices: np.ndarray, d: int, dtype=np.float64) -> np.ndarray:
    """The course's d x n_len one-hot matrix per name; padding (index d) is an all-zero column.

    Inputs: indices (n, n_len) ints in 0..d. Returns: (n, d, n_len) array of dtype.
    """
    n, n_len = indices.shape
    out = np.zeros((n, d, n_len), dtype)
    i, j = np.nonzero(indices < d)
    out[i, indices[i, j], j] = 1
    return out


def soft_targets(names: np.ndarray, labels: np.ndarray, n_classes: int,
                 dtype=np.float64) -> np.ndarray:
    """A uniform target over every label each name carries in this set (the 2023 bonus).

    Inputs: names (n,) str, labels (n,) ints. Returns: T (n, n_classes), rows sum to 1.
    """
    unique, inv = np.unique(names, return_inverse=True)
    carried = np.zeros((len(unique), n_classes), dtype)
    carried[inv, labels] = 1
    carried /= carried.sum(axis=1, keepdims=True)
    return carried[inv]


# ---------------------------------------------------------------------------- params

class NamesParams(Params):
    format: Literal["auto", "course", "tutorial"] = "auto"
    soft_labels: bool = False  # names with several training labels get a uniform target
    # Tutorial format only (the course files fix the validation set): a stratified split.
    val_per_class: PositiveInt | None = None  # default 14 per class, as the course
    val_fraction: float | None = Field(None, gt=0, lt=1)
    split_seed: int = 0

    @model_validator(mode="after")
    def _one_val_rule(self):
        if self.val_per_class is not None and self.val_fraction is not None:
            raise ValueError("give val_per_class or val_fraction, not both")
        return self


# ---------------------------------------------------------------------------- finding files

def _course_dirs(data_dir: Path) -> list[Path]:
    return [data_dir / "names", data_dir]


def _tutorial_dirs(data_dir: Path) -> list[Path]:
    return [data_dir / "names", data_dir / "data" / "names"]


def _language_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.glob("*.txt") if f.name not in COURSE_FILES)


def search_places(data_dir: Path, fmt: str = "auto") -> list[str]:
    """Where `locate` looks, in order."""
    course = [str(d / NAMES_FILE) for d in _course_dirs(data_dir)]
    tutorial = [str(d / "<Language>.txt") for d in _tutorial_dirs(data_dir)]
    return {"course": course, "tutorial": tutorial}.get(fmt, course + tutorial)


def locate(data_dir: Path, fmt: str = "auto") -> Found | None:
    """The course files if present (unless fmt says tutorial), else a tutorial folder."""
    if fmt in ("auto", "course"):
        for d in _course_dirs(data_dir):
            if (d / NAMES_FILE).is_file():
                return Found(d, "course")
    if fmt in ("auto", "tutorial"):
        for d in _tutorial_dirs(data_dir):
            if _language_files(d):
                return Found(d, "tutorial")
    return None


# ---------------------------------------------------------------------------- reading files

@dataclass
class NamesTable:
    """All names in file order, before encoding."""

    names: list[str]  # normalised: stripped, lowercase, accents folded
    labels: np.ndarray  # (n,) int64, 0-based
    is_val: np.ndarray  # (n,) bool
    class_names: list[str]
    found: Found
    dropped_chars: Counter = field(default_factory=Counter)  # tutorial: non-ASCII removed
    dropped_names: int = 0  # tutorial: names with no ASCII character left


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file, trailing blank lines removed; UserError if empty."""
    if not path.is_file():
        raise UserError(f"{path}: file missing; fetch the names data with "
                        "`dl2424 data fetch names`")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: drop a BOM
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e})") from e
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise UserError(f"{path}: the file is empty")
    return lines


def read_categories(path: Path) -> list[str]:
    """category_labels.txt: line i is 'i Language'."""
    names = []
    for i, line in enumerate(_read_lines(path), 1):
        parts = line.split(None, 1)
        if len(parts) != 2 or parts[0] != str(i):
            raise UserError(f"{path}, line {i}: expected '{i} <Language>', found {line!r}")
        names.append(parts[1].strip())
    return names


def read_course_names(path: Path, n_classes: int) -> tuple[list[str], np.ndarray]:
    """ascii_names.txt: 'Surname Label' per line; a surname may itself contain spaces.

    Returns: normalised names and 0-based labels (n,) int64.
    """
    names, labels = [], []
    for i, line in enumerate(_read_lines(path), 1):
        parts = line.rsplit(None, 1)  # the label follows the last run of whitespace
        name = normalize(parts[0]) if len(parts) == 2 else ""
        if not name or not parts[1].isdigit():
            raise UserError(f"{path}, line {i}: expected 'Surname Label', found {line!r}")
        label = int(parts[1])
        if not 1 <= label <= n_classes:
            raise UserError(f"{path}, line {i}: label {label} is outside 1..{n_classes} "
                            f"(the classes of {LABELS_FILE})")
        names.append(name)
        labels.append(label - 1)
    return names, np.array(labels, dtype=np.int64)


def read_val_inds(path: Path, n: int) -> np.ndarray:
    """Validation_Inds.txt: whitespace-separated 1-based line numbers. Returns a (n,) mask."""
    items = [(line_no, tok) for line_no, line in enumerate(_read_lines(path), 1)
             for tok in line.split()]
    seen: dict[int, int] = {}
    for j, (line_no, tok) in enumerate(items, 1):
        where = f"{path}, line {line_no}, item {j}"
        if not tok.isdigit():
            raise UserError(f"{where}: {tok!r} is not a line number")
        v = int(tok)
        if not 1 <= v <= n:
            raise UserError(f"{where}: line number {v} is outside 1..{n} ({NAMES_FILE} has "
                            f"{n} lines); is this the index file for another names file?")
        if v in seen:
            raise UserError(f"{where}: line number {v} repeats item {seen[v]}")
        seen[v] = j
    mask = np.zeros(n, dtype=bool)
    mask[np.array(list(seen), dtype=np.int64) - 1] = True
    return mask


def read_course(found: Found) -> NamesTable:
    class_names = read_categories(found.folder / LABELS_FILE)
    names, labels = read_course_names(found.folder / NAMES_FILE, len(class_names))
    is_val = read_val_inds(found.folder / VAL_FILE, len(names))
    if is_val.all():
        raise UserError(f"{found.folder / VAL_FILE}: lists every line of {NAMES_FILE}, which "
                        "leaves no names to train on")
    n_train = np.bincount(labels[~is_val], minlength=len(class_names))
    if (n_train == 0).any():
        empty = [class_names[k] for k in np.flatnonzero(n_train == 0)]
        raise UserError(f"{found.folder / VAL_FILE}: puts every name of {', '.join(empty)} in "
                        "the validation set, which leaves that class nothing to train on")
    return NamesTable(names, labels, is_val, class_names, found)


def read_tutorial(found: Found, p: NamesParams) -> NamesTable:
    """One file per language; class order = sorted file names. Non-ASCII left after folding
    accents (e.g. the Polish ł) is dropped and counted."""
    files = _language_files(found.folder)
    names, labels, dropped, dropped_names = [], [], Counter(), 0
    for k, path in enumerate(files):
        n_before = len(names)
        for raw in _read_lines(path):
            name = normalize(raw)
            kept = "".join(c for c in name if c.isascii())
            dropped.update(c for c in name if not c.isascii())
            if kept.strip():
                names.append(kept.strip())
                labels.append(k)
            elif name:
                dropped_names += 1
        if len(names) == n_before:
            raise UserError(f"{path}: no names in this language file")
    labels = np.array(labels, dtype=np.int64)
    class_names = [f.stem for f in files]
    is_val = stratified_val(labels, class_names, p)
    return NamesTable(names, labels, is_val, class_names, found, dropped, dropped_names)


def stratified_val(labels: np.ndarray, class_names: list[str], p: NamesParams) -> np.ndarray:
    """A seeded validation mask with val_per_class (or val_fraction of each class) per class."""
    rng = np.random.default_rng(p.split_seed)
    is_val = np.zeros(len(labels), dtype=bool)
    for c, name in enumerate(class_names):  # a loop over classes, not examples
        members = np.flatnonzero(labels == c)
        k = (max(1, round(p.val_fraction * len(members))) if p.val_fraction is not None
             else p.val_per_class or DEFAULT_VAL_PER_CLASS)
        if k >= len(members):
            raise UserError(f"names: class {name} has {len(members)} names; taking {k} for "
                            "validation leaves none for training (lower val_per_class or "
                            "val_fraction)")
        is_val[rng.choice(members, size=k, replace=False)] = True
    return is_val


def read_table(p: NamesParams, data_dir: Path) -> NamesTable:
    """Find and parse the names data in the format p asks for."""
    found = locate(data_dir, p.format)
    if found is None:
        places = "\n".join(f"  {s}" for s in search_places(data_dir, p.format))
        raise UserError(
            f"names data not found under the data dir {data_dir}. Looked for:\n{places}\n"
            "Download it with `dl2424 data fetch names` (or `--source tutorial`), or point "
            "--data-dir / DL2424_DATA_DIR at the folder that holds names/.")
    if found.format == "course":
        if p.val_per_class is not None or p.val_fraction is not None:
            raise UserError(f"names: val_per_class / val_fraction apply to the tutorial format; "
                            f"the course files in {found.folder} fix the validation set in "
                            f"{VAL_FILE}")
        return read_course(found)
    return read_tutorial(found, p)


# ---------------------------------------------------------------------------- the loader

@DATASETS.register(NAME, NamesParams, locate=locate, search_places=search_places)
def load(p: NamesParams, data_dir: Path, dtype: np.dtype) -> DataBundle:
    """Surnames -> language (course A3 files or the PyTorch tutorial), as character indices."""
    t = read_table(p, data_dir)
    encoder = Encoder.fit(t.names, t.class_names)
    X = encoder.encode(t.names)
    text = np.array(t.names)
    tr, va = ~t.is_val, t.is_val
    T = None
    if p.soft_labels:
        T = soft_targets(text[tr], t.labels[tr], len(t.class_names), dtype)
    train = Split(X[tr], t.labels[tr], T, text=text[tr].tolist())
    val = Split(X[va], t.labels[va], text=text[va].tolist())
    meta = {"vocab": encoder.d}
    if t.found.format == "tutorial":
        meta["non_ascii_dropped"] = sum(t.dropped_chars.values())
    info = DataInfo(input_shape=(encoder.n_len,), class_names=t.class_names, meta=meta,
                    encoder=encoder.to_json())
    return DataBundle(train, val, None, info,
                      masks={"val_unseen": ~np.isin(text[va], text[tr])})
