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

import json
import os
import re
from pathlib import Path
from typing import Any

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.data.archive import member_path, members, remember, remembered
from nsynth_research.instruments.data.audio import AudioProblems, probe, probe_files
from nsynth_research.instruments.data.notes import (
    ARCHIVE_SEP,
    SOURCES,
    Note,
    check_split_name,
    format_listing,
    missing_split,
    split_archive,
    split_dir,
)
from nsynth_research.instruments.data.subsample import per_instrument, spread
from nsynth_research.instruments.families import FAMILIES, FAMILY_INDEX, family_from_note_str

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
                library=str(entry.get("library", "")),
                sample_group=int(entry.get("sample_group", -1)),
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
        probe_files([n.path for n in notes])[0].raise_if_any(str(audio_dir))
    return notes


def _read_archive(archive: Path, check_audio: bool) -> list[Note]:
    """One streamed pass over the archive (examples.json plus the audio members), or none
    when the archive is unchanged since a reader remembered its manifest."""
    notes = remembered(archive, check_audio)
    if notes is not None:
        return notes
    audio: dict[str, str] = {}
    examples = None
    meta_name = "examples.json"
    problems = AudioProblems()

    def wanted(name: str) -> bool:
        return Path(name).name == "examples.json" or (check_audio and _is_audio(name))

    for name, data in members(archive, wanted):
        if Path(name).name == "examples.json":
            if examples is not None:
                raise DataError(
                    f"{archive} holds two examples.json ({meta_name}, {name}); "
                    "one split per archive"
                )
            meta_name = name
            examples = _parse_examples(data or b"", f"{archive}{ARCHIVE_SEP}{name}")
        elif _is_audio(name):
            path = member_path(archive, name)
            if data is not None:
                probe(data, path, problems)
            audio[Path(name).stem] = path
    notes = _join(examples, audio, str(archive), meta_name)
    problems.raise_if_any(str(archive))
    remember(archive, notes, check_audio)
    return notes


def _is_audio(name: str) -> bool:
    path = Path(name)
    return path.suffix == ".wav" and path.parent.name == "audio"


def read_split(
    root: Path | str,
    split: str,
    *,
    check_audio: bool = True,
    limit: int | None = None,
    per_instrument_limit: int | None = None,
) -> list[Note]:
    """The manifest of one split, sorted by note_str, with every WAV header checked.

    `check_audio` reads each header (sample rate, channels, length), so a bad file fails
    here, naming it, rather than mid-training. Files at another sample rate than 16 kHz are
    refused, not resampled (see the module docstring); the error says how to convert them.

    `per_instrument_limit` keeps at most that many notes of each instrument, spread over its
    pitches and velocities (`subsample.per_instrument`): what a study searches on before it
    fits its choice on the whole split. `limit` then keeps a deterministic subset of exactly
    `limit` notes in which every family stays represented (`subsample.spread`); it is for
    quick runs only.
    """
    check_split_name(split)
    root = Path(root)
    directory, archive = split_dir(root, split), split_archive(root, split)
    if directory.is_dir():
        notes = _read_dir(directory, check_audio)
        where = directory
    elif archive.is_file():
        notes = _read_archive(archive, check_audio)
        where = archive
    else:
        raise missing_split(root, split)
    if not notes:
        raise DataError(
            f"split {split!r} at {where} holds no notes (no audio/*.wav); re-extract or "
            "re-render it"
        )
    notes.sort(key=lambda n: n.note_str)
    if per_instrument_limit is not None:
        notes = per_instrument(notes, per_instrument_limit)
    if limit is not None and limit < len(notes):
        notes = spread(notes, limit)
    return notes
