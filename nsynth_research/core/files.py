"""Writing files so that a crash, a full disk or a concurrent writer never leaves a torn file
that a later run would trust: write beside the target, then rename over it."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

#: Suffix of the temporary files `atomic_writer` leaves only when killed mid-write.
TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """A binary file handle whose contents appear at `path` only once complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_save(path: Path, save: Callable[[IO[bytes]], None]) -> None:
    """Let `save` (e.g. `soundfile.write`, `numpy.savez`) write into a handle, atomically."""
    with atomic_writer(path) as fh:
        save(fh)


def remove_stale_temporaries(directory: Path, older_than: float = 600.0) -> int:
    """Remove leftovers of writers killed mid-file; a live writer's files are younger."""
    cutoff = time.time() - older_than
    removed = 0
    for tmp in Path(directory).glob(f".*{TEMP_SUFFIX}"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # another process removed or renamed it meanwhile
    return removed


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    """Content digest of a file, streamed: identifies a file by what it holds, not its path."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()
