"""Reading NSynth-format data: the official jsonwav layout, as directories or `.tar.gz` archives.

A split is `<root>/nsynth-<split>/examples.json` + `audio/*.wav`, or the archive
`<root>/nsynth-<split>.jsonwav.tar.gz` read in place (members are streamed; nothing is
unpacked to disk). Without examples.json the labels come from the file names.

Audio must already be NSynth's: 16 kHz, mono, 64,000 samples. A file at another rate is
refused, not resampled, because a silently resampled training note is a different note;
`predict` is the place that accepts any audio.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from nsynth_research.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.errors import DataError
from nsynth_research.families import family_from_note_str, family_index

SPLITS = ("train", "valid", "test")
ARCHIVE_SEP = "::"
SOURCES = {"acoustic": 0, "electronic": 1, "synthetic": 2}
REQUIRED_FIELDS = (
    "instrument",
    "instrument_str",
    "pitch",
    "velocity",
    "instrument_family_str",
    "instrument_source",
)
NAME_PATTERN = re.compile(
    r"^(?P<instrument>[a-z_]+_[a-z]+_\d+)-(?P<pitch>\d{3})-(?P<velocity>\d{3})$"
)
#: Problems of one kind listed in a message before "and N more".
SHOWN = 5


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


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" ... and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def split_dir(root: Path, split: str) -> Path:
    return Path(root) / f"nsynth-{split}"


def split_archive(root: Path, split: str) -> Path:
    return Path(root) / f"nsynth-{split}.jsonwav.tar.gz"


def _check_split_name(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; NSynth splits are {', '.join(SPLITS)}")


def _missing_split(root: Path, split: str) -> DataError:
    root = Path(root)
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    what = f"it holds: {', '.join(present)}" if present else "it does not exist or is empty"
    return DataError(
        f"split {split!r} not found under {root}: expected {split_dir(root, split)}/ or "
        f"{split_archive(root, split).name} ({what}). Run `make data` to render the default "
        "corpus, or set data.root to an NSynth download (nsynth-{train,valid,test})."
    )


def _check_header(rate: int, channels: int, frames: int, where: str) -> None:
    if rate != SAMPLE_RATE:
        raise DataError(
            f"{where}: sample rate {rate} Hz; NSynth-format corpora are 16 kHz mono. "
            "Resample it first (e.g. `sox in.wav -r 16000 out.wav` or librosa.resample)."
        )
    if channels != 1:
        raise DataError(f"{where}: {channels} channels; NSynth notes are mono, down-mix it first")
    if frames < NUM_SAMPLES:
        raise DataError(
            f"{where}: truncated, {frames} samples where NSynth notes have {NUM_SAMPLES} "
            "(4 s at 16 kHz); re-extract or re-render it"
        )


def _decode(source: str | io.BytesIO, where: str) -> np.ndarray:
    try:
        audio, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise DataError(
            f"{where}: not a readable WAV file ({exc}); replace or re-render it"
        ) from None
    _check_header(rate, audio.shape[1], audio.shape[0], where)
    return audio[:NUM_SAMPLES, 0]


def load_audio(path: str) -> np.ndarray:
    """A note's audio, float32 (64000,), from a file or an archive member."""
    if ARCHIVE_SEP in path:
        archive, member = path.split(ARCHIVE_SEP, 1)
        with tarfile.open(archive, "r:gz") as tar:
            try:
                handle = tar.extractfile(member)
            except KeyError:
                handle = None
            if handle is None:
                raise DataError(f"{archive}: no member {member}")
            return _decode(io.BytesIO(handle.read()), path)
    if not Path(path).is_file():
        raise DataError(f"audio file not found: {path}")
    return _decode(path, path)


def iter_audio(notes: Sequence[Note]) -> Iterator[tuple[Note, np.ndarray]]:
    """Stream audio: plain files in the given order; each archive read once, in its order."""
    by_archive: dict[str, dict[str, Note]] = {}
    for note in notes:
        if note.in_archive:
            archive, member = note.path.split(ARCHIVE_SEP, 1)
            by_archive.setdefault(archive, {})[member] = note
        else:
            yield note, load_audio(note.path)
    for archive, wanted in by_archive.items():
        with tarfile.open(archive, "r|gz") as tar:
            for info in tar:
                note = wanted.get(info.name)
                if note is None:
                    continue
                handle = tar.extractfile(info)
                assert handle is not None
                yield note, _decode(io.BytesIO(handle.read()), note.path)


# ----------------------------------------------------------------------------- manifests


def _note_from_entry(note_str: str, entry: dict, path: str, where: str) -> Note:
    missing = [f for f in REQUIRED_FIELDS if f not in entry]
    if missing:
        raise DataError(f"{where}: entry {note_str!r} lacks field(s) {', '.join(missing)}")
    family = entry["instrument_family_str"]
    return Note(
        note_str=note_str,
        path=path,
        family=family_index(family, f"{where} entry {note_str!r}"),
        instrument_str=str(entry["instrument_str"]),
        instrument=int(entry["instrument"]),
        source=int(entry["instrument_source"]),
        pitch=int(entry["pitch"]),
        velocity=int(entry["velocity"]),
    )


def _notes_from_names(paths: dict[str, str], where: str) -> list[Note]:
    """Labels from NSynth file names when examples.json is absent."""
    parsed = {}
    bad = []
    for stem in paths:
        match = NAME_PATTERN.match(stem)
        if match is None:
            bad.append(stem)
        else:
            parsed[stem] = match
    if bad:
        raise DataError(
            f"{where}: no examples.json and {len(bad)} file name(s) not of the NSynth form "
            f"<family>_<source>_<NNN>-<pitch>-<velocity>.wav: {_listing(bad)}"
        )
    instruments = {m["instrument"] for m in parsed.values()}
    index = {name: i for i, name in enumerate(sorted(instruments))}
    notes = []
    for stem, m in parsed.items():
        source = m["instrument"].split("_")[-2]
        notes.append(
            Note(
                note_str=stem,
                path=paths[stem],
                family=family_index(family_from_note_str(stem), f"file name {stem}.wav in {where}"),
                instrument_str=m["instrument"],
                instrument=index[m["instrument"]],
                source=SOURCES.get(source, -1),
                pitch=int(m["pitch"]),
                velocity=int(m["velocity"]),
            )
        )
    return notes


def _parse_examples(raw: bytes, where: str) -> dict[str, dict]:
    try:
        examples = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{where} is not valid JSON ({exc}); re-extract the split") from None
    if not isinstance(examples, dict):
        raise DataError(f"{where} must be an object keyed by note_str")
    return examples


def _join(examples: dict[str, dict] | None, audio: dict[str, str], where: str) -> list[Note]:
    """Match examples.json entries to audio files, reporting every mismatch of each kind."""
    if examples is None:
        return _notes_from_names(audio, where)
    no_audio = sorted(set(examples) - set(audio))
    if no_audio:
        raise DataError(
            f"{where}/examples.json: {len(no_audio)} entr(y/ies) without audio/<note_str>.wav: "
            f"{_listing(no_audio)}; restore the files or remove the entries"
        )
    no_entry = sorted(set(audio) - set(examples))
    if no_entry:
        raise DataError(
            f"{where}/audio: {len(no_entry)} file(s) without an examples.json entry: "
            f"{_listing(no_entry)}; add entries or remove the files"
        )
    return [_note_from_entry(k, examples[k], audio[k], f"{where}/examples.json") for k in examples]


def _read_dir(directory: Path, check_audio: bool) -> list[Note]:
    audio_dir = directory / "audio"
    files = sorted(audio_dir.glob("*.wav")) if audio_dir.is_dir() else []
    audio = {p.stem: str(p) for p in files}
    meta = directory / "examples.json"
    examples = _parse_examples(meta.read_bytes(), str(meta)) if meta.is_file() else None
    notes = _join(examples, audio, str(directory))
    if check_audio:
        for note in notes:
            try:
                info = sf.info(note.path)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise DataError(
                    f"{note.path}: not a readable WAV file ({exc}); replace or re-render it"
                ) from None
            _check_header(info.samplerate, info.channels, info.frames, note.path)
    return notes


def _read_archive(archive: Path, check_audio: bool) -> list[Note]:
    """One streamed pass over the archive: examples.json plus the audio member names."""
    audio: dict[str, str] = {}
    examples = None
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for info in tar:
                name = Path(info.name)
                if name.name == "examples.json":
                    handle = tar.extractfile(info)
                    assert handle is not None
                    examples = _parse_examples(handle.read(), f"{archive}::{info.name}")
                elif name.suffix == ".wav" and name.parent.name == "audio":
                    path = f"{archive}{ARCHIVE_SEP}{info.name}"
                    if check_audio:
                        handle = tar.extractfile(info)
                        assert handle is not None
                        _decode(io.BytesIO(handle.read()), path)
                    audio[name.stem] = path
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: not a readable .tar.gz archive ({exc})") from None
    return _join(examples, audio, str(archive))


def read_split(
    root: Path | str, split: str, *, check_audio: bool = True, limit: int | None = None
) -> list[Note]:
    """The manifest of one split, sorted by note_str, every WAV header checked.

    `limit` keeps an evenly spaced subset (every k-th note by name), so families and
    instruments stay represented in proportion; it is for quick runs only.
    """
    _check_split_name(split)
    directory, archive = split_dir(root, split), split_archive(root, split)
    if directory.is_dir():
        notes = _read_dir(directory, check_audio)
    elif archive.is_file():
        notes = _read_archive(archive, check_audio)
    else:
        raise _missing_split(Path(root), split)
    if not notes:
        raise DataError(f"split {split!r} under {root} holds no notes")
    notes.sort(key=lambda n: n.note_str)
    if limit is not None and limit < len(notes):
        step = len(notes) / limit
        notes = [notes[int(i * step)] for i in range(limit)]
    return notes


def split_fingerprint(root: Path | str, split: str) -> str:
    """What defines a split's data: examples.json plus file names and sizes (or the archive)."""
    _check_split_name(split)
    directory, archive = split_dir(root, split), split_archive(root, split)
    digest = hashlib.sha256(split.encode())
    if directory.is_dir():
        meta = directory / "examples.json"
        if meta.is_file():
            digest.update(meta.read_bytes())
        for path in sorted((directory / "audio").glob("*.wav")):
            digest.update(f"{path.name}:{path.stat().st_size};".encode())
    elif archive.is_file():
        # Hashing a 20 GB archive on every run costs minutes; size + its first 8 MB (where
        # tar puts examples.json first in the official archives) identify it in practice.
        digest.update(str(archive.stat().st_size).encode())
        with archive.open("rb") as handle:
            digest.update(handle.read(8 << 20))
    else:
        raise _missing_split(Path(root), split)
    return digest.hexdigest()[:16]


def data_fingerprint(root: Path | str, splits: Sequence[str] = SPLITS) -> str:
    digest = hashlib.sha256()
    for split in splits:
        digest.update(f"{split}={split_fingerprint(root, split)};".encode())
    return digest.hexdigest()[:16]
