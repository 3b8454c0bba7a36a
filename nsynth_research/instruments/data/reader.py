"""Reading NSynth-format data: the official jsonwav layout, as directories or `.tar.gz` archives.

A split is `<root>/nsynth-<split>/examples.json` + `audio/*.wav`, or the archive
`<root>/nsynth-<split>.jsonwav.tar.gz` read in place: members are streamed, nothing is
unpacked to disk, because the train archive alone unpacks to ~70 GB. When both exist the
directory wins (it is what an unpacked archive looks like, and random access is cheap).
Without examples.json the labels come from the file names.

Audio must already be NSynth's: 16 kHz, mono, at least 64,000 samples (longer files are cut
to 64,000). A file at another sample rate is refused, not resampled: a silently resampled
training note is a different note, and a corpus at the wrong rate is almost always a
mistake worth hearing about; the message says how to resample it (sox, librosa).

Problems are reported per kind and all at once ("3 files at the wrong sample rate: ..."),
so fixing a download takes one round trip, not one per file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import soundfile as sf

from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.core.errors import DataError
from nsynth_research.instruments.families import FAMILIES, FAMILY_INDEX, family_from_note_str

SPLITS = ("train", "valid", "test")
#: Separates an archive path from a member name in `Note.path`.
ARCHIVE_SEP = "::"
SOURCES = {"acoustic": 0, "electronic": 1, "synthetic": 2}
#: examples.json fields the reader needs; the other official fields are optional here.
REQUIRED_FIELDS = (
    "instrument",
    "instrument_str",
    "pitch",
    "velocity",
    "instrument_family_str",
    "instrument_source",
)
INT_FIELDS = ("instrument", "pitch", "velocity", "instrument_source")
NAME_PATTERN = re.compile(
    r"^(?P<instrument>[a-z_]+_(?P<source>[a-z]+)_\d+)-(?P<pitch>\d{3})-(?P<velocity>\d{3})$"
)
#: Problems of one kind named in a message before "... and N more".
SHOWN = 5

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


def _check_split_name(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; NSynth splits are {', '.join(SPLITS)}")


def _missing_split(root: Path, split: str) -> DataError:
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    what = f"it holds: {format_listing(present, 12)}" if present else "it is missing or empty"
    return DataError(
        f"split {split!r} not found: expected the folder {split_dir(root, split)}/ "
        f"(with examples.json and audio/) or the archive {split_archive(root, split)} "
        f"under {root} ({what}). Run `make data` to render the default corpus, or point "
        "data.root at a real NSynth download (nsynth-{train,valid,test} folders or "
        ".jsonwav.tar.gz archives)."
    )


# ----------------------------------------------------------------------------- audio checks


class _AudioProblems:
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


def _probe(source: str | IO[bytes], path: str, problems: _AudioProblems) -> None:
    """Header only (rate, channels, frames): no decode, so 300k files take seconds."""
    try:
        with sf.SoundFile(source) as handle:
            rate, channels, frames = handle.samplerate, handle.channels, handle.frames
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        problems.add("unreadable", path, _open_error(exc))
        return
    problems.check_header(path, rate, channels, frames)


def _probe_files(paths: Sequence[str]) -> _AudioProblems:
    # Sequential on purpose: ~30 us per file on a warm disk (300k files in ~10 s), and
    # threads were twice as slow there (the per-call Python work holds the GIL).
    problems = _AudioProblems()
    for path in paths:
        _probe(path, path, problems)
    return problems


def _decode(source: str | IO[bytes], path: str) -> np.ndarray:
    problems = _AudioProblems()
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


# ----------------------------------------------------------------------------- manifests


def _notes_from_examples(examples: dict[str, Any], audio: dict[str, str], where: str) -> list[Note]:
    """Labelled notes from examples.json entries, every bad entry of each kind reported."""
    lacking: list[str] = []
    malformed: list[str] = []
    unknown: dict[str, list[str]] = {}
    notes = []
    for note_str, entry in examples.items():
        if not isinstance(entry, dict):
            malformed.append(f"{note_str!r} (not an object)")
            continue
        absent = [f for f in REQUIRED_FIELDS if f not in entry]
        if absent:
            lacking.append(f"{note_str!r} lacks field(s) {', '.join(absent)}")
            continue
        bad = [f for f in INT_FIELDS if not _is_int(entry[f])]
        if bad:
            shown = ", ".join(f"{f}={entry[f]!r}" for f in bad)
            malformed.append(f"{note_str!r} (not integer: {shown})")
            continue
        family = entry["instrument_family_str"]
        if family not in FAMILY_INDEX:
            unknown.setdefault(str(family), []).append(note_str)
            continue
        notes.append(
            Note(
                note_str=note_str,
                path=audio[note_str],
                family=FAMILY_INDEX[family],
                instrument_str=str(entry["instrument_str"]),
                instrument=int(entry["instrument"]),
                source=int(entry["instrument_source"]),
                pitch=int(entry["pitch"]),
                velocity=int(entry["velocity"]),
            )
        )
    errors = []
    if lacking:
        errors.append(
            f"{len(lacking)} entr{'y' if len(lacking) == 1 else 'ies'} incomplete: "
            f"{format_listing(lacking)}; every entry needs {', '.join(REQUIRED_FIELDS)} "
            "(NSynth's examples.json format): re-extract the file or fill them in"
        )
    if malformed:
        errors.append(
            f"{len(malformed)} malformed entr{'y' if len(malformed) == 1 else 'ies'}: "
            f"{format_listing(malformed)}; re-extract the file or fix them"
        )
    errors.extend(_unknown_families(unknown))
    if errors:
        raise DataError(f"{where}: " + "\n".join(errors))
    return notes


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown_families(unknown: dict[str, list[str]]) -> list[str]:
    return [
        f"unknown instrument family {family!r} in {len(names)} note(s): "
        f"{format_listing(sorted(names))}; expected one of {', '.join(FAMILIES)}: fix the "
        "labels or drop those notes"
        for family, names in sorted(unknown.items())
    ]


def _notes_from_names(audio: dict[str, str], where: str) -> list[Note]:
    """Labels from NSynth file names when examples.json is absent.

    Instrument ids are the rank of instrument_str among this split's instruments: stable
    for a given file set, though not NSynth's own ids (which only examples.json has).
    """
    parsed: dict[str, re.Match[str]] = {}
    bad: list[str] = []
    unknown: dict[str, list[str]] = {}
    for stem in audio:
        match = NAME_PATTERN.match(stem)
        if match is None:
            bad.append(f"{stem}.wav")
        elif family_from_note_str(stem) not in FAMILY_INDEX:
            unknown.setdefault(family_from_note_str(stem), []).append(f"{stem}.wav")
        else:
            parsed[stem] = match
    errors = []
    if bad:
        errors.append(
            f"{len(bad)} file name(s) not of the NSynth form "
            f"<family>_<source>_<NNN>-<pitch:03d>-<velocity:03d>.wav: {format_listing(bad)}; "
            "rename them or provide examples.json"
        )
    errors.extend(_unknown_families(unknown))
    if errors:
        raise DataError(f"{where} (no examples.json, labels from file names): " + "\n".join(errors))
    index = {name: i for i, name in enumerate(sorted({m["instrument"] for m in parsed.values()}))}
    return [
        Note(
            note_str=stem,
            path=audio[stem],
            family=FAMILY_INDEX[family_from_note_str(stem)],
            instrument_str=m["instrument"],
            instrument=index[m["instrument"]],
            source=SOURCES.get(m["source"], -1),
            pitch=int(m["pitch"]),
            velocity=int(m["velocity"]),
        )
        for stem, m in parsed.items()
    ]


def _parse_examples(raw: bytes, where: str) -> dict[str, Any]:
    try:
        examples = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{where} is not valid JSON ({exc}); re-extract it (or delete it to label the "
            "notes from their file names)"
        ) from None
    if not isinstance(examples, dict):
        raise DataError(
            f"{where} must hold one object keyed by note_str, not a {type(examples).__name__}"
        )
    return examples


def _join(
    examples: dict[str, Any] | None, audio: dict[str, str], where: str, meta_name: str
) -> list[Note]:
    """Match examples.json entries with audio files, reporting every mismatch of each kind."""
    if examples is None:
        return _notes_from_names(audio, where)
    no_audio = sorted(set(examples) - set(audio))
    no_entry = sorted(set(audio) - set(examples))
    errors = []
    if no_audio:
        errors.append(
            f"{len(no_audio)} {meta_name} entr{'y' if len(no_audio) == 1 else 'ies'} without "
            f"audio/<note_str>.wav: {format_listing(no_audio)}; restore the files or remove "
            "the entries"
        )
    if no_entry:
        errors.append(
            f"{len(no_entry)} audio file(s) without an examples.json entry: "
            f"{format_listing([f'{n}.wav' for n in no_entry])}; add entries or remove the files"
        )
    if errors:
        raise DataError(f"{where}: " + "\n".join(errors))
    return _notes_from_examples(examples, audio, f"{where}/{meta_name}")


def _read_dir(directory: Path, check_audio: bool) -> list[Note]:
    audio_dir = directory / "audio"
    audio: dict[str, str] = {}
    if audio_dir.is_dir():
        with os.scandir(audio_dir) as entries:
            for item in entries:
                if item.name.endswith(".wav"):
                    audio[item.name[:-4]] = os.path.join(audio_dir, item.name)
    meta = directory / "examples.json"
    examples = _parse_examples(meta.read_bytes(), str(meta)) if meta.is_file() else None
    notes = _join(examples, audio, str(directory), "examples.json")
    if check_audio:
        _probe_files([n.path for n in notes]).raise_if_any(str(audio_dir))
    return notes


def _read_archive(archive: Path, check_audio: bool) -> list[Note]:
    """One streamed pass over the archive: examples.json plus the audio member names."""
    audio: dict[str, str] = {}
    examples = None
    meta_name = "examples.json"
    problems = _AudioProblems()
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for info in tar:
                name = Path(info.name)
                if not info.isfile():
                    continue
                if name.name == "examples.json":
                    if examples is not None:
                        raise DataError(
                            f"{archive} holds two examples.json ({meta_name}, {info.name}); "
                            "one split per archive"
                        )
                    handle = tar.extractfile(info)
                    assert handle is not None
                    meta_name = info.name
                    examples = _parse_examples(handle.read(), f"{archive}{ARCHIVE_SEP}{info.name}")
                elif name.suffix == ".wav" and name.parent.name == "audio":
                    path = f"{archive}{ARCHIVE_SEP}{info.name}"
                    if check_audio:
                        handle = tar.extractfile(info)
                        assert handle is not None
                        _probe(io.BytesIO(handle.read()), path, problems)
                    audio[name.stem] = path
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(
            f"{archive}: not a readable .tar.gz archive ({exc}); download it again"
        ) from None
    notes = _join(examples, audio, str(archive), meta_name)
    problems.raise_if_any(str(archive))
    return notes


def _spread(notes: list[Note], limit: int) -> list[Note]:
    """`limit` notes, every family kept (while limit allows), evenly spaced by note_str.

    Quotas are proportional to family size with at least one per family; within a family
    the picks are evenly spaced over its name-sorted notes, which walks across its
    instruments, pitches and velocities. No randomness: the same files give the same subset.
    """
    by_family: dict[int, list[Note]] = {}
    for note in notes:
        by_family.setdefault(note.family, []).append(note)
    families = sorted(by_family, key=lambda f: (-len(by_family[f]), f))
    if limit < len(families):
        quota = {f: int(f in families[:limit]) for f in families}
    else:
        total = len(notes)
        quota = {f: max(1, limit * len(by_family[f]) // total) for f in families}
        while sum(quota.values()) > limit:
            largest = max((f for f in families if quota[f] > 1), key=lambda f: quota[f])
            quota[largest] -= 1
        while sum(quota.values()) < limit:
            # The family furthest below its proportional share gets the next pick.
            room = [f for f in families if quota[f] < len(by_family[f])]
            pick = max(room, key=lambda f: limit * len(by_family[f]) / total - quota[f])
            quota[pick] += 1
    chosen = []
    for family, members in by_family.items():
        q = quota[family]
        chosen.extend(members[int((i + 0.5) * len(members) / q)] for i in range(q))
    return sorted(chosen, key=lambda n: n.note_str)


def read_split(
    root: Path | str, split: str, *, check_audio: bool = True, limit: int | None = None
) -> list[Note]:
    """The manifest of one split, sorted by note_str, with every WAV header checked.

    `check_audio` reads each header (sample rate, channels, length), so a bad file fails
    here, naming it, rather than mid-training. Files at another sample rate than 16 kHz are
    refused, not resampled (see the module docstring); the error says how to convert them.

    `limit` keeps a deterministic subset of exactly `limit` notes in which every family
    stays represented (see `_spread`); it is for quick runs only.
    """
    _check_split_name(split)
    root = Path(root)
    directory, archive = split_dir(root, split), split_archive(root, split)
    if directory.is_dir():
        notes = _read_dir(directory, check_audio)
        where = directory
    elif archive.is_file():
        notes = _read_archive(archive, check_audio)
        where = archive
    else:
        raise _missing_split(root, split)
    if not notes:
        raise DataError(
            f"split {split!r} at {where} holds no notes (no audio/*.wav); re-extract or "
            "re-render it"
        )
    notes.sort(key=lambda n: n.note_str)
    if limit is not None and limit < len(notes):
        notes = _spread(notes, limit)
    return notes


# ----------------------------------------------------------------------------- fingerprints


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
    _check_split_name(split)
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
        raise _missing_split(root, split)
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
