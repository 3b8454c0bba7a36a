"""Writing files so that a crash, a full disk or a concurrent writer never leaves a torn file
that a later run would trust: write beside the target, then rename over it."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from filelock import FileLock, Timeout

from nsynth_research.core.errors import UserError

log = logging.getLogger(__name__)

#: Suffix of the temporary files `atomic_writer` leaves only when killed mid-write.
TEMP_SUFFIX = ".tmp"


@contextmanager
def exclusive(path: Path, waiting: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) against other processes and
    threads; logs `waiting` once when another holder makes this one wait."""
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info(waiting)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


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


def check_free_space(folder: Path, need: int, what: str) -> None:
    """Refuse to start writing `what` into `folder` with less than `need` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise UserError(
            f"not enough disk space for {what} in {folder}: {free / 2**20:.0f} MiB free, "
            f"{need / 2**20:.0f} MiB needed; free some space and rerun"
        )


#: How a full disk reads once a library has wrapped the OSError into its own error's text
#: (SQLite's SQLITE_FULL; TensorFlow and MLflow quoting the OS message).
_FULL_TEXT = ("database or disk is full", "No space left on device", "Disk quota exceeded")


def disk_full(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) is a full disk, whatever wrapped it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(seen) for text in _FULL_TEXT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def create_atomically(path: Path, build: Callable[[Path], None], need: int, what: str) -> None:
    """Create `path` complete or not at all: `build` fills a temporary file beside it, which is
    linked into place only once it is whole (a crash or full disk leaves no half-made file
    that later runs would trip over). The link never replaces an existing file, so of two
    concurrent creators the first wins and nobody's open store is swapped away under it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(path.parent, need, what)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.unlink()  # builders such as SQLite want to create the file themselves
        build(tmp)
        os.link(tmp, path)
    except FileExistsError:
        return  # another process created it first: use theirs
    except Exception as exc:
        if disk_full(exc):
            raise UserError(
                f"the disk filled up while creating {what} at {path}; free at least "
                f"{need / 2**20:.0f} MiB there and rerun (nothing was left half-made)"
            ) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


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
