"""NSynth's `.jsonwav.tar.gz` read in place: one sequential pass, and its manifest remembered.

A gzip stream has no index, so the only affordable way through the 22 GB train archive is
front to back in member order. Two things set that pass's speed (benchmarks/bench_large.py
measures them): the inflate, ISA-L's being about twice zlib's, and how the tar reader pulls
bytes from it (tarfile's stream mode reads 10 kB at a time unless told otherwise; 1 MiB reads
halve the Python work per note).

Listing an archive's notes costs such a pass too, so the manifest it yields is remembered per
archive under the user cache, by the archive's size and modification time (as file hashes
are, see `fingerprint`): a second process reading the same split (a sweep worker, the test
read, a rerun) starts at once instead of inflating 30 GB again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import astuple, fields
from pathlib import Path
from types import ModuleType

from nsynth_research.core.errors import DataError
from nsynth_research.core.files import atomic_write_bytes
from nsynth_research.instruments.data.fingerprint import hash_cache_dir
from nsynth_research.instruments.data.notes import ARCHIVE_SEP, Note

_gzip: ModuleType
# The ignore below: isal's stub declares `isal_zlib.error` an instance; it is the class.
_InflateError: type[Exception]
try:  # ISA-L's inflate; zlib's when the wheel is missing (same bytes, half the speed)
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _InflateError  # type: ignore[assignment]
except ImportError:  # pragma: no cover - isal is a dependency
    _gzip = gzip
    _InflateError = zlib.error

log = logging.getLogger(__name__)

#: Bytes the tar reader asks the inflate for at a time.
BUFSIZE = 1 << 20
#: What a damaged or truncated archive raises while it is read.
ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, _InflateError)
#: Bumped when what a remembered manifest holds changes.
MANIFEST_VERSION = 1


def members(
    archive: Path | str, wanted: Callable[[str], bool] = lambda name: True
) -> Iterator[tuple[str, bytes | None]]:
    """(member name, bytes) of every regular file, in archive order; the bytes are None for
    a member `wanted` declines (skipped, never copied)."""
    try:
        with (
            _gzip.open(archive, "rb") as stream,
            tarfile.open(fileobj=stream, mode="r|", bufsize=BUFSIZE) as tar,
        ):
            for info in tar:
                if not info.isfile():
                    continue
                if not wanted(info.name):
                    yield info.name, None
                    continue
                handle = tar.extractfile(info)
                yield info.name, handle.read() if handle is not None else b""
    except ARCHIVE_ERRORS as exc:
        raise DataError(
            f"{archive}: not a readable .tar.gz archive ({exc}); download it again"
        ) from None


def member_path(archive: Path | str, member: str) -> str:
    return f"{archive}{ARCHIVE_SEP}{member}"


def _memo_path(archive: Path) -> Path:
    key = hashlib.sha256(str(archive.resolve()).encode()).hexdigest()[:16]
    return hash_cache_dir() / "manifests" / f"{key}.json.gz"


def _stamp(archive: Path) -> list[int]:
    stat = archive.stat()
    return [MANIFEST_VERSION, stat.st_size, stat.st_mtime_ns]


_FIELDS = [f.name for f in fields(Note)]


def remembered(archive: Path, checked: bool) -> list[Note] | None:
    """The archive's notes as last read, if the file is unchanged since (and its audio was
    checked then, when `checked` asks for that)."""
    path = _memo_path(archive)
    try:
        with gzip.open(path, "rt") as handle:
            memo = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError) as exc:
        log.warning("remembered manifest %s unreadable (%s); reading the archive", path, exc)
        return None
    if memo.get("stamp") != _stamp(archive) or memo.get("fields") != _FIELDS:
        return None
    if checked and not memo.get("checked"):
        return None
    notes = []
    for row in memo["notes"]:
        values = dict(zip(_FIELDS, row, strict=True))
        values["path"] = member_path(archive, values["path"])
        notes.append(Note(**values))
    return notes


def remember(archive: Path, notes: list[Note], checked: bool) -> None:
    """Keep the manifest for the next reader; a cache that cannot be written costs only that."""
    prefix = f"{archive}{ARCHIVE_SEP}"
    at = _FIELDS.index("path")
    rows = [list(astuple(n)) for n in notes]
    for row in rows:
        row[at] = row[at].removeprefix(prefix)
    memo = {"stamp": _stamp(archive), "fields": _FIELDS, "checked": checked, "notes": rows}
    path = _memo_path(archive)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, gzip.compress(json.dumps(memo).encode(), 1))
    except OSError as exc:
        log.warning("could not remember the manifest of %s at %s (%s)", archive, path, exc)
