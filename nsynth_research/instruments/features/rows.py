"""A feature cache on disk: one contiguous file of fixed-size rows and the note each row holds.

Reading one file per note cost every training step its own read buffers, their mapping and
unmapping, and the tf.data threads that fetched them (docs/performance.md, "Input pipeline"
measures it); rows of one file are instead mapped once and gathered a batch at a time. At
NSynth size this is also one file per split and front-end instead of 300k small ones.

`rows.<f32|f16>` holds the rows back to back; `notes.txt` names them, one note per line,
in row order. Rows are only appended, under an exclusive lock, and a name is appended only
after its row is on disk, so a killed or crashed writer leaves at worst unnamed bytes past
the last named row, which the next writer cuts off. Readers take no lock: named rows never
change. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import logging
import mmap
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsynth_research.core.files import atomic_write_text, exclusive

log = logging.getLogger(__name__)

#: Folder under the data root that holds cached features, one subfolder per cache.
CACHE_DIR = "features"
NAMES = "notes.txt"
_LOCK = ".lock"
#: Output buffers start on this boundary, so TensorFlow adopts them without a copy.
_ALIGN = 64
#: (mean, std + eps) as float32 arrays: what a `Gatherer` normalises with.
Normalisation = tuple[np.ndarray, np.ndarray]
#: On-disk (little-endian) dtype and file suffix per cache dtype.
_FORMATS = {"float32": ("<f4", "f32"), "float16": ("<f2", "f16")}


@dataclass(frozen=True)
class RowFile:
    """The rows of one cache folder: `frames` x `bins` values of `dtype` each."""

    directory: Path
    frames: int
    bins: int
    dtype: str = "float32"

    @property
    def data(self) -> Path:
        return self.directory / f"rows.{_FORMATS[self.dtype][1]}"

    @property
    def names(self) -> Path:
        return self.directory / NAMES

    @property
    def row_bytes(self) -> int:
        return self.frames * self.bins * np.dtype(_FORMATS[self.dtype][0]).itemsize

    def index(self) -> dict[str, int]:
        """Note name -> row, for every named row wholly on disk."""
        return {name: row for row, name in enumerate(self._valid())}

    def _valid(self) -> list[str]:
        """Names of the rows wholly on disk, in row order."""
        try:
            size = self.data.stat().st_size
        except FileNotFoundError:
            size = 0
        return self._named()[: size // self.row_bytes]

    def _named(self) -> list[str]:
        try:
            text = self.names.read_text()
        except FileNotFoundError:
            return []
        lines = text.split("\n")
        return lines[:-1]  # a last line without its newline was cut short: not yet named

    def locked(self) -> AbstractContextManager[None]:
        """Exclusive among writers (processes and threads): a second filler waits, then finds
        the rows the first one wrote."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return exclusive(
            self.directory / _LOCK, f"waiting for another process filling {self.directory}"
        )

    @contextmanager
    def appender(self) -> Iterator[RowAppender]:
        """Append rows (hold `locked` around it): unnamed bytes a killed writer left are cut
        off first, and a names file longer than the rows (a damaged data file) is cut back."""
        valid = self._valid()
        if len(valid) != len(self._named()) or not self.names.exists():
            atomic_write_text(self.names, "".join(f"{n}\n" for n in valid))
        with open(self.data, "ab") as data:
            data.truncate(len(valid) * self.row_bytes)
            appender = RowAppender(self, data)
            try:
                yield appender
            finally:
                appender.commit()

    def mapped(self) -> np.ndarray:
        """All rows as a read-only [rows, frames, bins] array over a shared mapping: pages
        come from the page cache, nothing is copied until a batch is gathered."""
        with open(self.data, "rb") as handle:
            buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        whole = len(buffer) // self.row_bytes  # not the unnamed tail a killed writer left
        rows = np.frombuffer(buffer, _FORMATS[self.dtype][0], count=whole * self.frames * self.bins)
        return rows.reshape(whole, self.frames, self.bins)


class RowAppender:
    """Writes rows in arrival order; `commit` makes them durable, then names them."""

    def __init__(self, rows: RowFile, data) -> None:
        self._rows, self._data = rows, data
        self._pending: list[str] = []

    def add(self, features: np.ndarray, names: list[str]) -> None:
        """`features` [n, frames, bins] for the notes `names`, stored in the cache dtype."""
        stored = np.ascontiguousarray(features, _FORMATS[self._rows.dtype][0])
        self._data.write(stored.tobytes())
        self._pending.extend(names)

    def commit(self) -> None:
        if not self._pending:
            return
        self._data.flush()
        os.fsync(self._data.fileno())
        with open(self._rows.names, "a") as names:
            names.write("".join(f"{n}\n" for n in self._pending))
            names.flush()
            os.fsync(names.fileno())
        self._pending = []


class Gatherer:
    """Note positions -> a batch of their rows (cast to float32, normalised when asked), in
    an aligned buffer that TensorFlow adopts as the batch tensor without a copy.

    Normalising goes row by row: each row is subtracted from the mapped file straight into
    its place in the batch and divided there while it is still in the core's cache, so a batch
    crosses memory once instead of three times (a gather, then a subtract and a divide over
    the whole 16 MB batch); on two cores that traffic is taken from the training step.
    """

    def __init__(
        self,
        rows: np.ndarray,
        where: list[int],
        normalise: Normalisation | None,
        *,
        widen: bool = True,
        advise: bool = True,
    ) -> None:
        self.rows, self.where, self.normalise = rows, np.asarray(where, np.int64), normalise
        # Off: raw rows in their stored dtype, for a caller that widens them itself (numpy
        # widens float16 an element at a time, several times slower than a compiled cast).
        self.widen = widen
        self.advise = advise  # off only to measure what advising the rows is worth
        # Rows that fit in memory stay in the page cache once read: advising them again each
        # epoch would cost a system call per row and read nothing. A file larger than memory
        # (or half of it, beside the models and batches) cannot stay cached: every gather
        # advises its rows.
        self._advised = None if rows.nbytes > physical_memory() // 2 else np.zeros(len(rows), bool)
        self._buffers = BufferPool()
        self._scratch = threading.local()  # float16 rows, reused by each calling thread

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        which = self.where[positions]
        if self.advise:
            self._advise(which)
        shape = (len(which), *self.rows.shape[1:])
        if not self.widen and self.normalise is None:
            stored = self._buffers.take(shape, self.rows.dtype)
            np.take(self.rows, which, axis=0, out=stored, mode="clip")
            return stored
        out = self._buffers.take(shape)
        if self.normalise is not None:
            mean, denom = self.normalise
            for k, row in enumerate(which):
                # float16 rows widen exactly to float32 inside the subtract: the same bits as
                # casting them first
                np.subtract(self.rows[row], mean, out=out[k])
                np.divide(out[k], denom, out=out[k])
            return out[..., np.newaxis]
        if self.rows.dtype == np.float32:
            # mode="clip" (the rows exist by construction) lets numpy write straight into out
            np.take(self.rows, which, axis=0, out=out, mode="clip")
        else:
            source = self._half(len(which))
            np.take(self.rows, which, axis=0, out=source, mode="clip")
            np.copyto(out, source)
        return out

    def _advise(self, which: np.ndarray) -> None:
        if self._advised is None:
            advise_willneed(self.rows, which)
            return
        fresh = which[~self._advised[which]]
        if len(fresh):
            advise_willneed(self.rows, fresh)
            self._advised[fresh] = True

    def _half(self, n: int) -> np.ndarray:
        shape = (n, *self.rows.shape[1:])
        buffer = getattr(self._scratch, "buffer", None)
        if buffer is None or buffer.shape != shape:
            buffer = self._scratch.buffer = np.empty(shape, self.rows.dtype)
        return buffer


def physical_memory() -> int:
    """Bytes of memory the machine has: the most page cache a rows file could stay in."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class BufferPool:
    """Batch-sized buffers, each handed out again only once nothing but the pool
    refers to it: TensorFlow holds a reference for as long as a batch tensor built on it
    lives. A fresh 16 MB buffer per batch would make the allocator map, fault in and unmap
    memory every step, the cost this layout exists to remove."""

    #: Buffers kept: the batches in flight (prefetched, being trained on) plus slack.
    KEEP = 8

    def __init__(self) -> None:
        self._owners: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        with self._lock:
            for owner in self._owners:
                # 3: the pool's list, this loop's name and getrefcount's own argument
                if owner.nbytes == nbytes + _ALIGN and sys.getrefcount(owner) == 3:
                    return _aligned(owner, shape, dtype)
            owner = np.empty(nbytes + _ALIGN, np.uint8)
            if len(self._owners) < self.KEEP:
                self._owners.append(owner)
            return _aligned(owner, shape, dtype)


def _aligned(owner: np.ndarray, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A `dtype` view of `shape` into `owner`, starting on an `_ALIGN` boundary. Every view
    of it keeps `owner` referenced (numpy's base is the array that owns the memory)."""
    start = -owner.ctypes.data % _ALIGN
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return owner[start : start + nbytes].view(dtype).reshape(shape)


def mapping_of(rows: np.ndarray) -> mmap.mmap | None:
    """The memory map under `rows` (through numpy views and the buffer's memoryview)."""
    base: object = rows
    while isinstance(base, np.ndarray | memoryview):
        base = base.base if isinstance(base, np.ndarray) else base.obj
    return base if isinstance(base, mmap.mmap) else None


def advise_willneed(rows: np.ndarray, which: np.ndarray) -> None:
    """Ask the kernel to start reading these rows now, all at once: a batch whose rows are not
    in the page cache then waits for one round of parallel reads instead of one per row."""
    buffer = mapping_of(rows)
    if buffer is None:
        return
    size = rows.strides[0]
    for row in np.unique(which):
        start = int(row) * size
        aligned = start - start % mmap.PAGESIZE
        buffer.madvise(mmap.MADV_WILLNEED, aligned, start + size - aligned)
