"""A rendered corpus packed as NSynth ships: `nsynth-{train,valid,test}.jsonwav.tar.gz`.

Each archive holds `nsynth-<split>/examples.json` and `nsynth-<split>/audio/<note_str>.wav`,
the layout the official downloads unpack to, compressed at gzip's default level (what
`tar czf` writes). examples.json goes first, so a reader meets the labels before the audio.
With these, the reading of real NSynth in place (`data.archive`) is exercised and measured
on a corpus of any size, without the download.
"""

from __future__ import annotations

import logging
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from nsynth_research.core.errors import DataError
from nsynth_research.core.files import atomic_writer
from nsynth_research.instruments.data.notes import SPLITS, split_archive, split_dir

log = logging.getLogger(__name__)

#: gzip's default level, as `tar czf` and NSynth's own archives use.
COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class Packed:
    """One split's archive and what packing it took."""

    split: str
    archive: Path
    notes: int
    seconds: float
    #: Bytes of the archive, and of the files it holds.
    archive_bytes: int
    content_bytes: int


def pack_split(root: Path, split: str, out: Path, *, progress: bool = True) -> Packed:
    """Pack `<root>/nsynth-<split>/` into `<out>/nsynth-<split>.jsonwav.tar.gz`, atomically.

    An archive newer than its split's examples.json (written last by a render) is kept.
    """
    directory = split_dir(root, split)
    meta = directory / "examples.json"
    if not meta.is_file() or not (directory / "audio").is_dir():
        raise DataError(
            f"{directory} is not a jsonwav split (no examples.json or audio/); render the "
            "corpus first (`python -m nsynth_research data`)"
        )
    with os.scandir(directory / "audio") as entries:
        wavs = sorted(e.name for e in entries if e.name.endswith(".wav"))
    content = meta.stat().st_size + sum((directory / "audio" / w).stat().st_size for w in wavs)
    archive = split_archive(out, split)
    start = time.perf_counter()
    if archive.is_file() and archive.stat().st_mtime > meta.stat().st_mtime:
        log.info("%s is newer than %s: kept", archive, meta)
    else:
        with (
            atomic_writer(archive) as raw,
            tarfile.open(fileobj=raw, mode="w:gz", compresslevel=COMPRESS_LEVEL) as tar,
        ):
            tar.add(meta, arcname=f"{directory.name}/examples.json")
            for name in tqdm(wavs, desc=f"packing {split}", unit="note", disable=not progress):
                tar.add(directory / "audio" / name, arcname=f"{directory.name}/audio/{name}")
    return Packed(
        split=split,
        archive=archive,
        notes=len(wavs),
        seconds=time.perf_counter() - start,
        archive_bytes=archive.stat().st_size,
        content_bytes=content,
    )


def pack_corpus(root: Path, out: Path, *, progress: bool = True) -> list[Packed]:
    """Every split of the corpus at `root` as an official archive under `out`."""
    root, out = Path(root), Path(out)
    if root.resolve() == out.resolve():
        raise DataError(
            f"pack the archives into another folder than the corpus ({root}): a root holding "
            "both the folders and the archives reads the folders"
        )
    out.mkdir(parents=True, exist_ok=True)
    return [pack_split(root, split, out, progress=progress) for split in SPLITS]
