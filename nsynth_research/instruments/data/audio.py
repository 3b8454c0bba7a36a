"""Decoding and checking NSynth audio: every header is checked before a split is used, and
problems are collected by kind and reported all at once ("3 files at the wrong sample rate:
..."), so fixing a download takes one round trip, not one per file.

Audio must already be NSynth's: 16 kHz, mono, at least 64,000 samples (longer files are cut
to 64,000). A file at another sample rate is refused, not resampled: a silently resampled
training note is a different note; the message says how to resample it (sox, librosa).
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.instruments.data.archive import members
from nsynth_research.instruments.data.notes import ARCHIVE_SEP, Note, format_listing
from nsynth_research.instruments.data.wav import decode_pcm16, parse_pcm16

_RESAMPLE = (
    "NSynth-format corpora are 16 kHz mono, and this reader refuses other rates rather than "
    "resample silently: convert the files first, e.g. `sox in.wav -r 16000 out.wav` or "
    "librosa.load(path, sr=16000) + soundfile.write"
)
#: Audio problem kind -> (what is wrong, what to do).
_AUDIO_PROBLEMS: dict[str, tuple[str, str]] = {
    "unreadable": (
        "not readable as WAV",
        "replace them with intact copies (re-extract the archive or re-render the corpus)",
    ),
    "rate": ("not at 16000 Hz", _RESAMPLE),
    "channels": (
        "not mono",
        "NSynth notes are mono: down-mix them first, e.g. `sox in.wav -c 1 out.wav`",
    ),
    "short": (
        f"shorter than {NUM_SAMPLES} samples",
        f"NSynth notes are 4 s at 16 kHz ({NUM_SAMPLES} samples): they are truncated; "
        "re-extract or re-render them",
    ),
    "range": (
        "with samples outside [-1, 1] or not finite",
        "NSynth notes are 16-bit PCM: rewrite them as PCM_16 WAV (peak-normalised)",
    ),
}


class AudioProblems:
    """Audio problems collected by kind, raised together as one DataError."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[str]] = {}

    def add(self, kind: str, path: str, detail: str) -> None:
        self.by_kind.setdefault(kind, []).append(f"{path}: {detail}")

    def check_header(self, path: str, rate: int, channels: int, frames: int) -> bool:
        """Record what is wrong with a note's format; True when nothing is."""
        if rate != SAMPLE_RATE:
            self.add("rate", path, f"sample rate {rate} Hz")
        elif channels != 1:
            self.add("channels", path, f"{channels} channels")
        elif frames < NUM_SAMPLES:
            self.add("short", path, f"truncated, {frames} samples (needs {NUM_SAMPLES})")
        else:
            return True
        return False

    def error(self, where: str) -> DataError | None:
        """One error for everything recorded (None if nothing), grouped by kind."""
        if not self.by_kind:
            return None
        total = sum(len(items) for items in self.by_kind.values())
        if total == 1:
            [(kind, [item])] = self.by_kind.items()
            return DataError(f"{item}. {_AUDIO_PROBLEMS[kind][1]}")
        lines = [f"{where}: {total} audio files are not NSynth-format notes"]
        for kind, items in self.by_kind.items():
            what, advice = _AUDIO_PROBLEMS[kind]
            lines.append(f"  {len(items)} {what}: {format_listing(items)}. {advice}")
        return DataError("\n".join(lines))

    def raise_if_any(self, where: str) -> None:
        error = self.error(where)
        if error is not None:
            raise error


def _open_error(exc: Exception) -> str:
    return f"not a readable WAV file ({str(exc).strip() or type(exc).__name__})"


def probe(source: str | bytes | IO[bytes], path: str, problems: AudioProblems) -> bool:
    """Header only (rate, channels, frames): no decode, so 300k files take seconds.

    Returns whether the file is a 16-bit PCM WAV (the encoding TensorFlow decodes in-graph);
    problems are recorded in `problems`. `source` is a path, a handle, or a file's bytes.
    """
    if isinstance(source, bytes):
        header = parse_pcm16(source)
        if header is not None:
            problems.check_header(path, header.rate, header.channels, header.frames)
            return True
        source = io.BytesIO(source)
    try:
        with sf.SoundFile(source) as handle:
            rate, channels, frames = handle.samplerate, handle.channels, handle.frames
            pcm16 = handle.format == "WAV" and handle.subtype == "PCM_16"
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        problems.add("unreadable", path, _open_error(exc))
        return False
    problems.check_header(path, rate, channels, frames)
    return pcm16


def probe_files(paths: Sequence[str]) -> tuple[AudioProblems, list[bool]]:
    """Every file's header checked, and whether each is 16-bit PCM: a corpus may mix WAV
    encodings (24-bit, float), so the decoder is chosen per file, never from the first."""
    # Sequential on purpose: ~30 us per file on a warm disk (300k files in ~10 s), and
    # threads were twice as slow there (the per-call Python work holds the GIL).
    problems = AudioProblems()
    return problems, [probe(path, path, problems) for path in paths]


def _decode(source: str | bytes, path: str) -> np.ndarray:
    problems = AudioProblems()
    if isinstance(source, bytes):
        header = parse_pcm16(source)
        if header is not None:
            if problems.check_header(path, header.rate, header.channels, header.frames):
                return decode_pcm16(source, header, NUM_SAMPLES)
            raise problems.error(path) or DataError(path)
        source = io.BytesIO(source)  # type: ignore[assignment]
    try:
        audio, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        problems.add("unreadable", path, _open_error(exc))
    else:
        if problems.check_header(path, rate, audio.shape[1], audio.shape[0]):
            mono = np.ascontiguousarray(audio[:NUM_SAMPLES, 0])
            peak = float(np.abs(mono).max())
            if peak <= 1.0:  # False for NaN too
                return mono
            problems.add("range", path, f"peak {peak:g}")
    raise problems.error(path) or DataError(path)


def load_audio(path: str) -> np.ndarray:
    """A note's audio as float32 (64000,) in [-1, 1], from a file or `<archive>::<member>`.

    The checks are read_split's (16 kHz, mono, >= 64000 samples; other rates are refused,
    not resampled); an archive member costs a scan of the archive up to it, so bulk reads
    go through `iter_audio`.
    """
    if ARCHIVE_SEP in path:
        archive, member = path.split(ARCHIVE_SEP, 1)
        if not Path(archive).is_file():
            raise DataError(f"archive not found: {archive} (for {path})")
        for _, data in members(archive, lambda name: name == member):
            if data is not None:
                return _decode(data, path)
        raise DataError(
            f"{archive} has no audio member {member}; the manifest does not belong to this "
            "archive: read the split again"
        )
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"audio file not found: {path}; read the split again or restore it"
        ) from None
    return _decode(data, path)


def iter_audio(notes: Sequence[Note]) -> Iterator[tuple[Note, np.ndarray]]:
    """(note, audio) for every note, in the fastest order for its layout: plain files in the
    given order, then each archive's notes in archive order, one sequential pass per archive
    (a gzip stream has no index: any other order would rescan it per note).

    This is the bulk reader: feature-cache fills and statistics passes stream a split through
    it, whether the split is a folder or a .tar.gz read in place.
    """
    by_archive: dict[str, dict[str, Note]] = {}
    for note in notes:
        if note.in_archive:
            archive, member = note.path.split(ARCHIVE_SEP, 1)
            by_archive.setdefault(archive, {})[member] = note
        else:
            yield note, load_audio(note.path)
    for archive, wanted in by_archive.items():
        found: set[str] = set()

        def take(name: str, wanted: dict[str, Note] = wanted, found: set[str] = found) -> bool:
            return name in wanted and name not in found

        for name, data in members(archive, take):
            if data is None:
                continue
            found.add(name)
            note = wanted[name]
            yield note, _decode(data, note.path)
            if len(found) == len(wanted):
                break  # the rest of the archive holds nothing asked for: not inflated
        missing = sorted(set(wanted) - found)
        if missing:
            raise DataError(
                f"{archive}: {len(missing)} requested member(s) not in the archive: "
                f"{format_listing(missing)}; the manifest does not belong to this archive: "
                "read the split again"
            )


def audio_batches(
    notes: Sequence[Note], batch_size: int, *, read_ahead: int = 2
) -> Iterator[tuple[list[Note], np.ndarray]]:
    """`iter_audio` in batches (notes, audio [B, 64000] float32), read by a background thread
    up to `read_ahead` batches ahead: the inflate and the decoding then overlap the caller's
    work on the previous batch (a batched STFT releases the GIL), so a feature-cache fill
    runs at the speed of its features from an archive as from a folder."""
    done = object()
    handoff: queue.Queue = queue.Queue(maxsize=max(1, read_ahead))
    stop = threading.Event()

    def read() -> None:
        batch: list[tuple[Note, np.ndarray]] = []
        try:
            for item in iter_audio(notes):
                batch.append(item)
                if len(batch) == batch_size:
                    _hand(handoff, stop, batch)
                    batch = []
            if batch:
                _hand(handoff, stop, batch)
            _hand(handoff, stop, done)
        except _Stopped:
            return
        except BaseException as exc:  # handed to the consumer, raised there
            with suppress(_Stopped):
                _hand(handoff, stop, exc)

    reader = threading.Thread(target=read, name="audio-batches", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield [n for n, _ in item], np.stack([a for _, a in item])
    finally:
        stop.set()
        reader.join()


class _Stopped(Exception):
    """The consumer of `audio_batches` stopped: the reader ends too."""


def _hand(handoff: queue.Queue, stop: threading.Event, item: object) -> None:
    """Put `item`, or raise `_Stopped` once the consumer is gone (the reader never hangs)."""
    while not stop.is_set():
        try:
            handoff.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Stopped
