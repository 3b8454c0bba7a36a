"""Reading NSynth jsonwav data, as folders and as .tar.gz archives, and refusing bad input."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nsynth_research.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.errors import DataError
from nsynth_research.families import FAMILY_INDEX
from nsynth_research.nsynth import data_fingerprint, iter_audio, load_audio, read_split

NAMES = [
    "bass_synthetic_033-022-050",
    "keyboard_electronic_001-021-127",
    "synth_lead_synthetic_000-060-075",
    "vocal_acoustic_002-064-100",
]


def entry(note_str: str, index: int) -> dict:
    instrument_str = note_str.split("-")[0]
    family = "synth_lead" if note_str.startswith("synth") else note_str.split("_")[0]
    source = instrument_str.split("_")[-2]
    return {
        "note": index,
        "note_str": note_str,
        "instrument": index,
        "instrument_str": instrument_str,
        "pitch": int(note_str.split("-")[1]),
        "velocity": int(note_str.split("-")[2]),
        "sample_rate": SAMPLE_RATE,
        "qualities": [0] * 10,
        "qualities_str": [],
        "instrument_family": FAMILY_INDEX[family],
        "instrument_family_str": family,
        "instrument_source": ["acoustic", "electronic", "synthetic"].index(source),
        "instrument_source_str": source,
    }


def tone(i: int, n: int = NUM_SAMPLES) -> np.ndarray:
    return (0.3 * np.sin(np.arange(n) * 0.01 * (i + 1))).astype(np.float32)


def make_split(
    root: Path, split: str = "train", names: list[str] = NAMES, meta: bool = True
) -> Path:
    directory = root / f"nsynth-{split}"
    (directory / "audio").mkdir(parents=True)
    for i, name in enumerate(names):
        sf.write(directory / "audio" / f"{name}.wav", tone(i), SAMPLE_RATE, subtype="PCM_16")
    if meta:
        examples = {name: entry(name, i) for i, name in enumerate(names)}
        (directory / "examples.json").write_text(json.dumps(examples))
    return directory


def test_reads_a_jsonwav_folder_and_the_same_as_an_archive(tmp_path: Path) -> None:
    directory = make_split(tmp_path / "dir")
    notes = read_split(tmp_path / "dir", "train")
    assert [n.note_str for n in notes] == sorted(NAMES)
    synth = next(n for n in notes if n.note_str.startswith("synth"))
    assert synth.family == FAMILY_INDEX["synth_lead"] and synth.source == 2 and synth.pitch == 60

    archive_root = tmp_path / "tar"
    archive_root.mkdir()
    with tarfile.open(archive_root / "nsynth-train.jsonwav.tar.gz", "w:gz") as tar:
        tar.add(directory, arcname="nsynth-train")
    packed = read_split(archive_root, "train")
    strip = [(n.note_str, n.family, n.instrument_str, n.pitch, n.velocity, n.source) for n in notes]
    assert [
        (n.note_str, n.family, n.instrument_str, n.pitch, n.velocity, n.source) for n in packed
    ] == strip
    assert all(n.in_archive for n in packed)
    assert not (archive_root / "nsynth-train").exists()  # nothing unpacked
    streamed = dict((n.note_str, a) for n, a in iter_audio(packed))
    for note in notes:
        np.testing.assert_array_equal(streamed[note.note_str], load_audio(note.path))
    np.testing.assert_array_equal(load_audio(packed[0].path), load_audio(notes[0].path))
    assert load_audio(notes[0].path).shape == (NUM_SAMPLES,)


def test_file_names_stand_in_for_a_missing_examples_json(tmp_path: Path) -> None:
    make_split(tmp_path, meta=False)
    notes = read_split(tmp_path, "train")
    by_name = {n.note_str: n for n in notes}
    kb = by_name["keyboard_electronic_001-021-127"]
    assert (kb.family, kb.source, kb.pitch, kb.velocity) == (FAMILY_INDEX["keyboard"], 1, 21, 127)
    assert by_name["synth_lead_synthetic_000-060-075"].family == FAMILY_INDEX["synth_lead"]


def test_missing_split_names_what_is_there(tmp_path: Path) -> None:
    make_split(tmp_path, "train")
    with pytest.raises(DataError) as err:
        read_split(tmp_path, "valid")
    message = str(err.value)
    assert "nsynth-valid" in message and "nsynth-train" in message and "make data" in message


@pytest.mark.parametrize(
    ("damage", "phrase"),
    [
        ("corrupt", "not a readable WAV"),
        ("truncated", "truncated, 16000 samples"),
        ("rate", "sample rate 44100 Hz"),
        ("stereo", "2 channels"),
    ],
)
def test_bad_audio_is_refused_by_name(tmp_path: Path, damage: str, phrase: str) -> None:
    directory = make_split(tmp_path)
    bad = directory / "audio" / f"{NAMES[1]}.wav"
    if damage == "corrupt":
        bad.write_bytes(b"RIFF\x00\x00not really a wav file at all")
    elif damage == "truncated":
        sf.write(bad, tone(0, 16000), SAMPLE_RATE, subtype="PCM_16")
    elif damage == "rate":
        sf.write(bad, tone(0, 176400), 44100, subtype="PCM_16")
    else:
        sf.write(bad, np.stack([tone(0), tone(1)], axis=1), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(DataError) as err:
        read_split(tmp_path, "train")
    assert bad.name in str(err.value) and phrase in str(err.value)
    with pytest.raises(DataError, match=phrase):
        load_audio(str(bad))


def test_unknown_family_is_refused(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    examples = json.loads((directory / "examples.json").read_text())
    examples[NAMES[0]]["instrument_family_str"] = "kazoo"
    (directory / "examples.json").write_text(json.dumps(examples))
    with pytest.raises(DataError, match=rf"unknown instrument family 'kazoo'.*{NAMES[0]}"):
        read_split(tmp_path, "train")
    other = tmp_path / "names"
    make_split(other, names=["kazoo_acoustic_000-060-100"], meta=False)
    with pytest.raises(DataError, match=r"unknown instrument family 'kazoo'.*kazoo_acoustic_000"):
        read_split(other, "train")


def test_entries_and_files_must_match(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    (directory / "audio" / f"{NAMES[2]}.wav").unlink()
    with pytest.raises(DataError, match=rf"1 entr.* without audio.*{NAMES[2]}"):
        read_split(tmp_path, "train")
    other = tmp_path / "extra"
    directory = make_split(other)
    sf.write(directory / "audio" / "flute_acoustic_009-070-100.wav", tone(0), SAMPLE_RATE)
    with pytest.raises(
        DataError, match=r"without an examples\.json entry: flute_acoustic_009-070-100"
    ):
        read_split(other, "train")


def test_broken_examples_json_is_named(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    (directory / "examples.json").write_text("{not json")
    with pytest.raises(DataError, match=r"examples\.json is not valid JSON"):
        read_split(tmp_path, "train")
    examples = {name: entry(name, i) for i, name in enumerate(NAMES)}
    del examples[NAMES[3]]["pitch"]
    (directory / "examples.json").write_text(json.dumps(examples))
    with pytest.raises(DataError, match=rf"{NAMES[3]}.*lacks field\(s\) pitch"):
        read_split(tmp_path, "train")


def test_limit_and_fingerprint(tmp_path: Path) -> None:
    make_split(tmp_path)
    assert len(read_split(tmp_path, "train", limit=2)) == 2
    before = data_fingerprint(tmp_path, ("train",))
    assert before == data_fingerprint(tmp_path, ("train",))
    sf.write(
        tmp_path / "nsynth-train" / "audio" / f"{NAMES[0]}.wav",
        tone(0, NUM_SAMPLES + 5),
        SAMPLE_RATE,
    )
    assert data_fingerprint(tmp_path, ("train",)) != before
