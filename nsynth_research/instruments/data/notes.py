"""The NSynth-format layout: split names, where a split lives, and one note of a manifest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nsynth_research.core.errors import DataError

SPLITS = ("train", "valid", "test")
#: Separates an archive path from a member name in `Note.path`.
ARCHIVE_SEP = "::"
SOURCES = {"acoustic": 0, "electronic": 1, "synthetic": 2}
#: Problems of one kind named in a message before "... and N more".
SHOWN = 5


@dataclass(frozen=True)
class Note:
    """One note of a split's manifest; `path` is a file, or `<archive>::<member>`."""

    note_str: str
    path: str
    family: int
    instrument_str: str
    instrument: int
    source: int
    pitch: int
    velocity: int
    #: Sample library the note was rendered from (the rendered corpus's `library` field; ""
    #: for real NSynth), which `data.train_libraries` folds on.
    library: str = ""
    #: Group of presets sharing PCM sample data (the corpus's `sample_group`; -1 unknown).
    sample_group: int = -1

    @property
    def in_archive(self) -> bool:
        return ARCHIVE_SEP in self.path


def format_listing(items: Sequence[str], shown: int = SHOWN) -> str:
    """The first few items, then how many more: messages stay readable for 300k problems."""
    head = ", ".join(items[:shown])
    return head + (f" ... and {len(items) - shown} more" if len(items) > shown else "")


def split_dir(root: Path | str, split: str) -> Path:
    return Path(root) / f"nsynth-{split}"


def split_archive(root: Path | str, split: str) -> Path:
    return Path(root) / f"nsynth-{split}.jsonwav.tar.gz"


def check_split_name(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; NSynth splits are {', '.join(SPLITS)}")


def missing_split(root: Path, split: str) -> DataError:
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    what = f"it holds: {format_listing(present, 12)}" if present else "it is missing or empty"
    return DataError(
        f"split {split!r} not found: expected the folder {split_dir(root, split)}/ "
        f"(with examples.json and audio/) or the archive {split_archive(root, split)} "
        f"under {root} ({what}). Run `make data` to render the default corpus, or point "
        "data.root at a real NSynth download (nsynth-{train,valid,test} folders or "
        ".jsonwav.tar.gz archives)."
    )
