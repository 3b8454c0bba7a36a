"""Fingerprints of NSynth-format data: what caches, reproduce and evaluation compare to
notice that the data under a root changed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from nsynth_research.instruments.data.notes import (
    SPLITS,
    check_split_name,
    missing_split,
    split_archive,
    split_dir,
)


def _hash_archive(archive: Path, update: Callable[[bytes], None]) -> None:
    # Hashing a 20 GB archive on every run would cost minutes. Its size, its head and its
    # tail identify it: the gzip trailer (last 8 bytes) is a CRC32 and length of the whole
    # uncompressed content.
    size = archive.stat().st_size
    update(f"archive:{size};".encode())
    with archive.open("rb") as handle:
        update(handle.read(1 << 20))
        handle.seek(max(0, size - (64 << 10)))
        update(handle.read())


def split_fingerprint(root: Path | str, split: str) -> str:
    """16 hex digits identifying a split's data, for caches and run tags.

    From examples.json's bytes when present (it names every note and its labels), else the
    sorted audio file names and sizes; an archive by size, head and tail. A rendered
    corpus's render.json (its render settings: gain, renderer) is included, because
    re-rendering with other settings leaves examples.json unchanged.
    """
    check_split_name(split)
    root = Path(root)
    directory, archive = split_dir(root, split), split_archive(root, split)
    digest = hashlib.sha256(f"split:{split};".encode())
    if directory.is_dir():
        meta = directory / "examples.json"
        if meta.is_file():
            digest.update(meta.read_bytes())
        else:
            audio_dir = directory / "audio"
            names = []
            if audio_dir.is_dir():
                with os.scandir(audio_dir) as entries:
                    names = [(e.name, e.stat().st_size) for e in entries if e.name.endswith(".wav")]
            for name, size in sorted(names):
                digest.update(f"{name}:{size};".encode())
    elif archive.is_file():
        _hash_archive(archive, digest.update)
    else:
        raise missing_split(root, split)
    render = root / "render.json"
    if render.is_file():
        digest.update(render.read_bytes())
    return digest.hexdigest()[:16]


def data_fingerprint(root: Path | str, splits: Sequence[str] = SPLITS) -> str:
    """One fingerprint over the given splits (order-sensitive, as the splits play roles)."""
    digest = hashlib.sha256()
    for split in splits:
        digest.update(f"{split}={split_fingerprint(root, split)};".encode())
    return digest.hexdigest()[:16]

