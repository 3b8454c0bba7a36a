"""Decoding and checking NSynth audio: every header is checked before a split is used, and
problems are collected by kind and reported all at once ("3 files at the wrong sample rate:
..."), so fixing a download takes one round trip, not one per file.

Audio must already be NSynth's: 16 kHz, mono, at least 64,000 samples (longer files are cut
to 64,000). A file at another sample rate is refused, not resampled: a silently resampled
training note is a different note; the message says how to resample it (sox, librosa).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.instruments.data.notes import ARCHIVE_SEP, Note, format_listing

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


def probe(source: str | IO[bytes], path: str, problems: AudioProblems) -> bool:
    """Header only (rate, channels, frames): no decode, so 300k files take seconds.

    Returns whether the file is a 16-bit PCM WAV (the encoding TensorFlow decodes in-graph);
    problems are recorded in `problems`.
    """
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


def _decode(source: str | IO[bytes], path: str) -> np.ndarray:
    problems = AudioProblems()
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
        try:
            with tarfile.open(archive, "r:gz") as tar:
                try:
                    handle = tar.extractfile(member)
                except KeyError:
                    handle = None
                if handle is None:
                    raise DataError(
                        f"{archive} has no audio member {member}; the manifest does not "
                        "belong to this archive: read the split again"
                    )
                data = handle.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive}: not a readable .tar.gz archive ({exc})") from None
        return _decode(io.BytesIO(data), path)
    if not Path(path).is_file():
        raise DataError(f"audio file not found: {path}; read the split again or restore it")
    return _decode(path, path)


def iter_audio(notes: Sequence[Note]) -> Iterator[tuple[Note, np.ndarray]]:
    """(note, audio) pairs: plain files in the given order, then each archive's notes.

    An archive is read once, front to back, yielding its requested notes in archive order:
    a gzip stream has no index, so any other order would rescan it per note.
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
        try:
            with tarfile.open(archive, "r|gz") as tar:
                for info in tar:
                    note = wanted.get(info.name)
                    if note is None or info.name in found:
                        continue
                    handle = tar.extractfile(info)
                    if handle is None:
                        continue
                    found.add(info.name)
                    yield note, _decode(io.BytesIO(handle.read()), note.path)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive}: not a readable .tar.gz archive ({exc})") from None
        missing = sorted(set(wanted) - found)
        if missing:
            raise DataError(
                f"{archive}: {len(missing)} requested member(s) not in the archive: "
                f"{format_listing(missing)}; the manifest does not belong to this archive: "
                "read the split again"
            )


