"""Fingerprints of NSynth-format data: what caches, reproduce and evaluation compare to
notice that the data under a root changed.

A fingerprint covers the audio itself, not only names and labels: NSynth WAVs all have the
same size, and a re-rendered corpus keeps every name, so anything less misses changed audio.
Hashing is streamed (a 20 GB archive never sits in memory) and remembered per file by path,
size and modification time, so only new or touched files are read again: the second
fingerprint of a 3,000-note corpus costs a directory listing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from nsynth_research.core.files import atomic_write_text, file_sha256
from nsynth_research.instruments.data.notes import (
    SPLITS,
    Note,
    check_split_name,
    missing_split,
    split_archive,
    split_dir,
)

log = logging.getLogger(__name__)

#: Environment variable naming the folder of remembered file hashes (default: the user cache).
CACHE_ENV = "NSYNTH_HASH_CACHE"


def hash_cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nsynth-research"
    return Path(os.environ.get(CACHE_ENV) or default / "file-hashes")


class FileHashes:
    """Content hashes of the files of one folder, remembered by (size, mtime) per name.

    The memory is one JSON file per folder in `hash_cache_dir()`, written atomically; two
    processes updating it at once only cost the loser's entries a recomputation later.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        key = hashlib.sha256(str(self.folder).encode()).hexdigest()[:16]
        self.path = hash_cache_dir() / f"{key}.json"
        self.known: dict[str, list] = {}
        self.changed = False
        if self.path.is_file():
            try:
                self.known = json.loads(self.path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
                log.warning("file-hash cache %s unreadable (%s); hashing again", self.path, exc)

    def digest(self, entry: os.DirEntry | Path) -> str:
        stat = entry.stat()
        name = entry.name
        seen = self.known.get(name)
        if seen and seen[0] == stat.st_size and seen[1] == stat.st_mtime_ns:
            return str(seen[2])
        value = file_sha256(Path(entry.path if isinstance(entry, os.DirEntry) else entry))
        self.known[name] = [stat.st_size, stat.st_mtime_ns, value]
        self.changed = True
        return value

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.known))
        except OSError as exc:
            log.warning("could not remember file hashes at %s (%s); next time hashes again",
                        self.path, exc)  # fmt: skip


def split_fingerprint(root: Path | str, split: str) -> str:
    """16 hex digits identifying a split's data, for caches and run tags.

    A folder: examples.json's bytes when present (names and labels), and the name and content
    hash of every WAV under audio/. An archive: the content hash of the whole archive.
    """
    check_split_name(split)
    root = Path(root)
    directory, archive = split_dir(root, split), split_archive(root, split)
    digest = hashlib.sha256(f"split:{split};".encode())
    if directory.is_dir():
        meta = directory / "examples.json"
        if meta.is_file():
            digest.update(b"examples.json:" + meta.read_bytes())
        audio_dir = directory / "audio"
        if audio_dir.is_dir():
            hashes = FileHashes(audio_dir)
            with os.scandir(audio_dir) as entries:
                wavs = sorted((e for e in entries if e.name.endswith(".wav")), key=lambda e: e.name)
                for entry in wavs:
                    digest.update(f"{entry.name}:{hashes.digest(entry)};".encode())
            hashes.save()
    elif archive.is_file():
        hashes = FileHashes(archive.parent)
        digest.update(f"archive:{hashes.digest(archive)};".encode())
        hashes.save()
    else:
        raise missing_split(root, split)
    return digest.hexdigest()[:16]


def data_fingerprint(root: Path | str, splits: Sequence[str] = SPLITS) -> str:
    """One fingerprint over the given splits (order-sensitive, as the splits play roles)."""
    digest = hashlib.sha256()
    for split in splits:
        digest.update(f"{split}={split_fingerprint(root, split)};".encode())
    return digest.hexdigest()[:16]


def notes_fingerprint(
    root: Path | str, parts: Mapping[str, Sequence[Note]], known: Mapping[str, str] | None = None
) -> str:
    """16 hex digits identifying the notes a run read: for each split they come from, that
    split's content (`split_fingerprint`) and which of its notes were taken.

    This is a run's Dataset digest: it follows the audio and labels, and the library fold or
    note limit that picked the notes, but not the features computed from them, so every
    front-end of a study reads the same train, valid and transfer datasets. `known` passes
    split fingerprints already computed."""
    digest = hashlib.sha256()
    for split in sorted(parts):
        content = (known or {}).get(split) or split_fingerprint(root, split)
        digest.update(f"{split}={content}:".encode())
        for name in sorted(n.note_str for n in parts[split]):
            digest.update(f"{name};".encode())
    return digest.hexdigest()[:16]
