"""`dl2424 data fetch`: download datasets from their public sources and check pinned hashes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pooch
import requests
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..errors import UserError
from . import cifar, names, text
from .paths import Found

CIFAR_ARCHIVES = {  # format -> (url, pinned hash)
    "python": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
               "md5:c58f30108f718f92721af3b95e74349a"),
    "matlab": ("https://www.cs.toronto.edu/~kriz/cifar-10-matlab.tar.gz",
               "md5:70270af85842c9e89bb428ec9976c926"),
}
NAMES_COMMIT = "b54b7f1df3c0ba5e13a9cbacb169d240c016c627"
NAMES_BASE_URL = ("https://raw.githubusercontent.com/anirudhseth/DD2424_DeepLearning-DataScience/"
                  f"{NAMES_COMMIT}/Lab3/")


def names_base_url() -> str:
    """$DL2424_NAMES_URL (a mirror of the three course files: same names, same hashes), read
    when a download starts, else the pinned commit."""
    return os.environ.get("DL2424_NAMES_URL") or NAMES_BASE_URL
NAMES_FILES = {  # file -> pinned hash
    names.NAMES_FILE: "sha256:6596c83949bdfce4220698aac108b7dbc2041be62616aa6f9a9dac6e340a9381",
    names.VAL_FILE: "sha256:e950f0a55f2a0d5e7f3ccac772a980f96bb4b65985add3b89f5effe3449af8d7",
    names.LABELS_FILE: "sha256:01bbbce224450b321f89caf62590a7e3ea9d3cf64ef248d43630f39f5772849f",
}
TUTORIAL_URL = "https://download.pytorch.org/tutorial/data.zip"  # no published hash
TEXT_FILES = {  # name -> (url, pinned hash); saved as <data dir>/text/<text.KNOWN[name]>
    # The course's book (copyrighted: never shipped), from a public copy at a pinned commit.
    "goblet": ("https://raw.githubusercontent.com/Sven-Mattus/DeepLearning_Group_98/"
               "ac05a0a1eb7a857c92dbd57f0311b3f89e11ce64/data/goblet_book.txt",
               "sha256:509e5a69c608d06db036bee9399516491e343abfeb3b6f26e42bdb20738791e5"),
    "tinyshakespeare": ("https://raw.githubusercontent.com/karpathy/char-rnn/"
                        "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
                        "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
}


@dataclass
class FetchResult:
    name: str
    folder: Path  # where the loader now finds the data
    hashes: dict[str, str] = field(default_factory=dict)  # file -> hash checked (or obtained)
    pinned: bool = True  # False: nothing to check against; hashes are what was downloaded
    already_present: bool = False


class RichProgress:
    """The progress-bar object pooch's HTTPDownloader drives (total, update, reset, close).

    pooch's own `progressbar=True` needs tqdm, which dl2424 does not depend on; rich is here.
    """

    def __init__(self, label: str, console: Console | None = None):
        self.total = 0
        self.label = label
        self.console = console or Console(stderr=True)
        self.bar: Progress | None = None
        self.task = None

    def _start(self):
        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(),
                                console=self.console)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total or None)

    def update(self, n: int):
        self._start()
        self.bar.update(self.task, advance=n)

    def reset(self):
        self._start()
        self.bar.reset(self.task, total=self.total or None)

    def close(self):
        if self.bar is not None:
            self.bar.stop()

    @property
    def completed(self) -> float:
        return self.bar.tasks[0].completed if self.bar else 0.0


class DownloadFailed(UserError):
    """The network did not deliver (no connection, HTTP error); nothing was kept."""


def make_downloader(url: str):
    """The pooch downloader for url (tests replace this to serve local files)."""
    return pooch.HTTPDownloader(progressbar=RichProgress(url.rsplit("/", 1)[-1]))


def download(url: str, known_hash: str | None, folder: Path, fname: str, by_hand: str,
             processor=None):
    """pooch.retrieve with failures turned into UserErrors that say how to place files by hand.

    A file already in `folder` with the right hash is not downloaded again.
    """
    try:
        return pooch.retrieve(url, known_hash, fname=fname, path=folder, processor=processor,
                              downloader=make_downloader(url))
    except requests.exceptions.RequestException as e:
        raise DownloadFailed(f"download failed: {url}\n({type(e).__name__}: {e})\n{by_hand}"
                             ) from e
    except ValueError as e:  # pooch: the downloaded file's hash differs from the pinned one
        raise UserError(f"{url}: {e}\nThe file was not kept. Retry, or {by_hand}") from e
    except OSError as e:
        raise UserError(f"could not write {folder / fname}: {e}") from e


def fetch_cifar10(data_dir: Path, fmt: str = "python") -> FetchResult:
    """The official CIFAR-10 archive (python or MATLAB batches), unpacked into data_dir."""
    url, known_hash = CIFAR_ARCHIVES[fmt]
    found = Found(data_dir / cifar.FOLDERS[fmt], fmt)
    batches = [*cifar.TRAIN_BATCHES, cifar.TEST_BATCH, cifar.META]
    needed = [cifar.batch_file(found, b) for b in batches]
    if all(f.is_file() for f in needed):
        return FetchResult(cifar.NAME, found.folder, already_present=True)
    archive = url.rsplit("/", 1)[-1]
    by_hand = (f"place the files by hand: download {url}, check its md5 is "
               f"{known_hash.split(':')[1]}, and unpack it in {data_dir} "
               f"(giving {found.folder}/).")
    download(url, known_hash, data_dir, archive, by_hand, processor=pooch.Untar(extract_dir="."))
    missing = [f.name for f in needed if not f.is_file()]
    if missing:
        raise UserError(f"{data_dir / archive} unpacked, but {found.folder} lacks "
                        f"{', '.join(missing)}; delete the archive and fetch again")
    return FetchResult(cifar.NAME, found.folder, {archive: known_hash})


def fetch_names(data_dir: Path, source: str = "course") -> FetchResult:
    """The course's three files (pinned commit and sha256) or the PyTorch tutorial archive."""
    if source == "tutorial":
        return _fetch_names_tutorial(data_dir)
    folder = data_dir / "names"
    by_hand = (f"place the files by hand: download {', '.join(NAMES_FILES)} from "
               f"{names_base_url()} into {folder}/.")
    for fname, known_hash in NAMES_FILES.items():
        download(names_base_url() + fname, known_hash, folder, fname, by_hand)
    return FetchResult(names.NAME, folder, dict(NAMES_FILES))


def _fetch_names_tutorial(data_dir: Path) -> FetchResult:
    by_hand = (f"place the files by hand: download {TUTORIAL_URL} and unzip it in {data_dir} "
               f"(giving {data_dir}/data/names/English.txt and the other languages).")
    download(TUTORIAL_URL, None, data_dir, "data.zip", by_hand,
             processor=pooch.Unzip(extract_dir="."))
    folder = data_dir / "data" / "names"
    if not names.locate(data_dir, "tutorial"):
        raise UserError(f"{data_dir / 'data.zip'} unpacked, but {folder} holds no "
                        "<Language>.txt files; delete data.zip and fetch again")
    sha = pooch.file_hash(str(data_dir / "data.zip"))
    return FetchResult(names.NAME, folder, {"data.zip": f"sha256:{sha}"}, pinned=False)


def fetch_text(name: str, data_dir: Path) -> FetchResult:
    """One of the known texts (TEXT_FILES) into data_dir/text/, checked against its sha256."""
    url, known_hash = TEXT_FILES[name]
    folder, fname = data_dir / "text", text.KNOWN[name]
    by_hand = (f"place the file by hand: download {url}, check its sha256 is "
               f"{known_hash.split(':')[1]}, and save it as {folder / fname}.")
    download(url, known_hash, folder, fname, by_hand)
    return FetchResult(name, folder, {fname: known_hash})


def fetch(name: str, data_dir: Path, fmt: str | None = None,
          source: str | None = None) -> FetchResult:
    """Download dataset `name` into data_dir. fmt is for cifar10, source for names."""
    if name == cifar.NAME:
        if source is not None:
            raise UserError("--source applies to `names` only (cifar10 takes --format)")
        return fetch_cifar10(data_dir, fmt or "python")
    if name == names.NAME:
        if fmt is not None:
            raise UserError("--format applies to `cifar10` only (names takes --source)")
        return fetch_names(data_dir, source or "course")
    if name in TEXT_FILES:
        if fmt is not None or source is not None:
            raise UserError(f"--format and --source do not apply to {name}")
        return fetch_text(name, data_dir)
    raise UserError(f"unknown dataset {name!r}; fetchable: {cifar.NAME}, {names.NAME}, "
                    f"{', '.join(TEXT_FILES)}")


def fetch_missing(spec, data_dir: Path, notify) -> FetchResult | None:
    """Download the dataset a config needs when it is not under data_dir (cifar10, names),
    saying first what comes from where; without a network, one message with the command."""
    from ..registry import DATASETS

    fmt = getattr(spec.params, "format", "auto")
    if spec.type not in (cifar.NAME, names.NAME) or DATASETS[spec.type].extras["locate"](
            data_dir, fmt):
        return None
    if spec.type == cifar.NAME:
        kw = {"fmt": "python" if fmt == "auto" else fmt}
        url, what = CIFAR_ARCHIVES[kw["fmt"]][0], f"the CIFAR-10 {kw['fmt']} archive (md5-checked)"
        flags = f" --format {kw['fmt']}"
    else:
        kw = {"source": "tutorial" if fmt == "tutorial" else "course"}
        url, what, flags = ((TUTORIAL_URL, "the PyTorch tutorial's names archive", " --source "
                             "tutorial") if kw["source"] == "tutorial" else
                            (names_base_url(), f"the course's {len(NAMES_FILES)} surname files "
                             "(sha256-checked)", ""))
    command = f"dl2424 data fetch {spec.type}{flags} --data-dir {data_dir}"
    notify(f"{spec.type} data not found under {data_dir}: downloading {what} from {url} "
           f"into {data_dir}")
    try:
        result = fetch(spec.type, data_dir, **kw)
    except DownloadFailed as e:
        cause = type(e.__cause__).__name__ if e.__cause__ else "no connection"
        raise UserError(f"{spec.type} data is not under {data_dir} and could not be downloaded "
                        f"from {url} ({cause}); with a network, run: {command}") from None
    notify(f"{spec.type}: {len(result.hashes)} file(s) checked, in {result.folder}")
    return result
