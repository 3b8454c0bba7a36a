"""Reading NSynth jsonwav data, as folders and as .tar.gz archives, and refusing bad input."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.instruments.data.audio import iter_audio, load_audio
from nsynth_research.instruments.data.fingerprint import data_fingerprint, split_fingerprint
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.families import FAMILIES, FAMILY_INDEX

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


def pack(directory: Path, root: Path) -> Path:
    """The official archive form: nsynth-<split>/ inside nsynth-<split>.jsonwav.tar.gz."""
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{directory.name}.jsonwav.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=directory.name)
    return archive


def labels(notes: list[Note]) -> list[tuple]:
    return [
        (n.note_str, n.family, n.instrument_str, n.instrument, n.source, n.pitch, n.velocity)
        for n in notes
    ]


def write_examples(directory: Path, examples: dict) -> None:
    (directory / "examples.json").write_text(json.dumps(examples))


def test_reads_a_jsonwav_folder_and_the_same_as_an_archive(tmp_path: Path) -> None:
    directory = make_split(tmp_path / "dir")
    notes = read_split(tmp_path / "dir", "train")
    assert [n.note_str for n in notes] == sorted(NAMES)
    synth = next(n for n in notes if n.note_str.startswith("synth"))
    assert (synth.family, synth.source, synth.pitch, synth.velocity) == (
        FAMILY_INDEX["synth_lead"],
        2,
        60,
        75,
    )
    assert synth.instrument_str == "synth_lead_synthetic_000" and not synth.in_archive
    assert synth.path == str(directory / "audio" / f"{synth.note_str}.wav")

    archive = pack(directory, tmp_path / "tar")
    packed = read_split(tmp_path / "tar", "train")
    assert labels(packed) == labels(notes)
    assert all(n.in_archive and n.path.startswith(f"{archive}::") for n in packed)
    assert [p.name for p in (tmp_path / "tar").iterdir()] == [archive.name]  # nothing unpacked

    # Plain files stream in the order asked; archive notes in archive order, all of them.
    order = notes[::-1]
    assert [n for n, _ in iter_audio(order)] == order
    streamed = {n.note_str: audio for n, audio in iter_audio(packed)}
    assert set(streamed) == set(NAMES)
    for i, name in enumerate(NAMES):
        expected = load_audio(str(directory / "audio" / f"{name}.wav"))
        assert expected.dtype == np.float32 and expected.shape == (NUM_SAMPLES,)
        np.testing.assert_allclose(expected, tone(i), atol=1 / 16384)
        np.testing.assert_array_equal(streamed[name], expected)
    one = next(n for n in packed if n.note_str == NAMES[1])
    np.testing.assert_array_equal(load_audio(one.path), streamed[NAMES[1]])


def test_a_folder_wins_over_an_archive(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    pack(make_split(tmp_path / "other", names=NAMES[:1]), tmp_path)
    notes = read_split(tmp_path, "train")
    assert len(notes) == len(NAMES) and not any(n.in_archive for n in notes)
    assert notes[0].path.startswith(str(directory))


def test_file_names_stand_in_for_a_missing_examples_json(tmp_path: Path) -> None:
    make_split(tmp_path, meta=False)
    notes = read_split(tmp_path, "train")
    by_name = {n.note_str: n for n in notes}
    kb = by_name["keyboard_electronic_001-021-127"]
    assert (kb.family, kb.source, kb.pitch, kb.velocity) == (FAMILY_INDEX["keyboard"], 1, 21, 127)
    assert kb.instrument_str == "keyboard_electronic_001"
    synth = by_name["synth_lead_synthetic_000-060-075"]
    assert (synth.family, synth.source) == (FAMILY_INDEX["synth_lead"], 2)
    # Instrument ids are the sorted order of the instrument names.
    assert [n.instrument for n in notes] == [0, 1, 2, 3]


def test_file_names_that_are_not_nsynth_names_are_listed(tmp_path: Path) -> None:
    make_split(tmp_path, names=[*NAMES, "take 3", "piano-60"], meta=False)
    with pytest.raises(DataError, match=r"2 file name\(s\) not of the NSynth form") as err:
        read_split(tmp_path, "train")
    assert "take 3.wav" in str(err.value) and "piano-60.wav" in str(err.value)


def test_missing_split_names_what_is_there(tmp_path: Path) -> None:
    make_split(tmp_path, "train")
    with pytest.raises(DataError) as err:
        read_split(tmp_path, "valid")
    message = str(err.value)
    assert str(tmp_path / "nsynth-valid") in message
    assert "nsynth-valid.jsonwav.tar.gz" in message
    assert "it holds: nsynth-train" in message and "make data" in message
    with pytest.raises(DataError, match="it is missing or empty"):
        read_split(tmp_path / "nowhere", "train")
    with pytest.raises(DataError, match="unknown split 'validation'"):
        read_split(tmp_path, "validation")


def damage(path: Path, how: str) -> None:
    if how == "corrupt":
        path.write_bytes(b"RIFF\x00\x00not really a wav file at all")
    elif how == "cut":
        path.write_bytes(path.read_bytes()[:5000])  # an interrupted copy
    elif how == "short":
        sf.write(path, tone(0, 16000), SAMPLE_RATE, subtype="PCM_16")
    elif how == "rate":
        sf.write(path, tone(0, 176400), 44100, subtype="PCM_16")
    else:
        sf.write(path, np.stack([tone(0), tone(1)], axis=1), SAMPLE_RATE, subtype="PCM_16")


BAD_AUDIO = [
    ("corrupt", "not a readable WAV", "intact copies"),
    ("cut", "truncated, 2478 samples", "re-extract or re-render"),
    ("short", "truncated, 16000 samples", "re-extract or re-render"),
    ("rate", "sample rate 44100 Hz", "NSynth-format corpora are 16 kHz mono"),
    ("stereo", "2 channels", "down-mix"),
]


@pytest.mark.parametrize(("how", "problem", "advice"), BAD_AUDIO)
def test_bad_audio_is_refused_by_name(tmp_path: Path, how: str, problem: str, advice: str) -> None:
    directory = make_split(tmp_path)
    bad = directory / "audio" / f"{NAMES[1]}.wav"
    damage(bad, how)
    for check in (lambda: read_split(tmp_path, "train"), lambda: load_audio(str(bad))):
        with pytest.raises(DataError) as err:
            check()
        message = str(err.value)
        assert f"{bad}: {problem}" in message and advice in message
    assert len(read_split(tmp_path, "train", check_audio=False)) == len(NAMES)


def test_wrong_rate_says_resample_and_how(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    damage(directory / "audio" / f"{NAMES[0]}.wav", "rate")
    with pytest.raises(DataError) as err:
        read_split(tmp_path, "train")
    assert "refuses other rates rather than resample" in str(err.value)
    assert "sox in.wav -r 16000 out.wav" in str(err.value)


def test_every_bad_file_is_reported_in_one_error(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    audio = directory / "audio"
    damage(audio / f"{NAMES[0]}.wav", "rate")
    damage(audio / f"{NAMES[1]}.wav", "rate")
    damage(audio / f"{NAMES[2]}.wav", "stereo")
    with pytest.raises(DataError) as err:
        read_split(tmp_path, "train")
    message = str(err.value)
    assert "3 audio files are not NSynth-format notes" in message
    assert "2 not at 16000 Hz" in message and "1 not mono" in message
    assert all(name in message for name in NAMES[:3]) and NAMES[3] not in message


def test_bad_audio_inside_an_archive_is_named(tmp_path: Path) -> None:
    directory = make_split(tmp_path / "dir")
    damage(directory / "audio" / f"{NAMES[2]}.wav", "rate")
    archive = pack(directory, tmp_path / "tar")
    with pytest.raises(DataError) as err:
        read_split(tmp_path / "tar", "train")
    member = f"{archive}::nsynth-train/audio/{NAMES[2]}.wav"
    assert f"{member}: sample rate 44100 Hz" in str(err.value)
    notes = read_split(tmp_path / "tar", "train", check_audio=False)
    with pytest.raises(DataError, match="sample rate 44100 Hz"):
        dict(iter_audio(notes))
    with pytest.raises(DataError, match="sample rate 44100 Hz"):
        load_audio(member)


def test_float_audio_outside_full_scale_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    sf.write(path, tone(0) * 5, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(DataError, match=r"loud\.wav: peak 1\.5.*PCM_16"):
        load_audio(str(path))
    with pytest.raises(DataError, match=r"audio file not found: .*gone\.wav"):
        load_audio(str(tmp_path / "gone.wav"))


def test_unknown_family_is_refused(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    examples = json.loads((directory / "examples.json").read_text())
    examples[NAMES[0]]["instrument_family_str"] = "kazoo"
    examples[NAMES[3]]["instrument_family_str"] = "kazoo"
    write_examples(directory, examples)
    with pytest.raises(DataError) as err:
        read_split(tmp_path, "train")
    message = str(err.value)
    assert "examples.json" in message
    assert f"unknown instrument family 'kazoo' in 2 note(s): {NAMES[0]}, {NAMES[3]}" in message
    assert "expected one of bass" in message

    other = tmp_path / "names"
    make_split(other, names=["kazoo_acoustic_000-060-100", NAMES[0]], meta=False)
    with pytest.raises(DataError) as err:
        read_split(other, "train")
    assert "labels from file names" in str(err.value)
    assert "unknown instrument family 'kazoo' in 1 note(s): kazoo_acoustic_000-060-100.wav" in (
        str(err.value)
    )


def test_entries_and_files_must_match(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    for name in NAMES[1:]:
        (directory / "audio" / f"{name}.wav").unlink()
    with pytest.raises(DataError) as err:
        read_split(tmp_path, "train")
    message = str(err.value)
    assert f"{directory}: 3 examples.json entries without audio/<note_str>.wav" in message
    assert ", ".join(NAMES[1:]) in message and "restore the files" in message

    other = tmp_path / "extra"
    directory = make_split(other)
    sf.write(directory / "audio" / "flute_acoustic_009-070-100.wav", tone(0), SAMPLE_RATE)
    with pytest.raises(
        DataError, match=r"1 audio file\(s\) without an examples\.json entry: flute_acoustic_009"
    ):
        read_split(other, "train")


def test_broken_examples_json_is_named(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    (directory / "examples.json").write_text("{not json")
    with pytest.raises(DataError, match=r"nsynth-train/examples\.json is not valid JSON"):
        read_split(tmp_path, "train")
    (directory / "examples.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="must hold one object keyed by note_str, not a list"):
        read_split(tmp_path, "train")

    examples = {name: entry(name, i) for i, name in enumerate(NAMES)}
    del examples[NAMES[3]]["pitch"]
    del examples[NAMES[0]]["velocity"], examples[NAMES[0]]["instrument_str"]
    examples[NAMES[1]]["pitch"] = "C4"
    write_examples(directory, examples)
    with pytest.raises(DataError) as err:
        read_split(tmp_path, "train")
    message = str(err.value)
    assert "2 entries incomplete" in message
    assert f"'{NAMES[3]}' lacks field(s) pitch" in message
    assert f"'{NAMES[0]}' lacks field(s) instrument_str, velocity" in message
    assert f"'{NAMES[1]}' (not integer: pitch='C4')" in message


def test_limit_keeps_every_family_evenly(tmp_path: Path) -> None:
    families = ["bass", "flute", "keyboard", "vocal"]
    weights = [40, 3, 20, 1]
    names = [
        f"{family}_acoustic_{i % 4:03d}-{21 + i:03d}-100"
        for family, count in zip(families, weights, strict=True)
        for i in range(count)
    ]
    make_split(tmp_path, names=names, meta=False)
    subset = read_split(tmp_path, "train", limit=8)
    assert len(subset) == 8 and subset == read_split(tmp_path, "train", limit=8)
    counts = Counter(FAMILIES[n.family] for n in subset)
    assert set(counts) == set(families) and counts["bass"] > counts["keyboard"] >= 1
    assert [n.note_str for n in subset] == sorted(n.note_str for n in subset)
    bass = {n.instrument_str for n in subset if FAMILIES[n.family] == "bass"}
    assert len(bass) == 4  # spread over the family's instruments, not its first few notes
    assert len(read_split(tmp_path, "train", limit=2)) == 2
    assert len(read_split(tmp_path, "train", limit=1000)) == len(names)


def test_fingerprints_follow_the_data(tmp_path: Path) -> None:
    directory = make_split(tmp_path)
    make_split(tmp_path, "valid", names=NAMES[:2])
    before = data_fingerprint(tmp_path, ("train", "valid"))
    assert len(before) == 16 and before == data_fingerprint(tmp_path, ("train", "valid"))
    assert before != data_fingerprint(tmp_path, ("valid", "train"))
    assert split_fingerprint(tmp_path, "train") != split_fingerprint(tmp_path, "valid")
    examples = json.loads((directory / "examples.json").read_text())
    examples[NAMES[0]]["velocity"] = 25
    write_examples(directory, examples)
    assert data_fingerprint(tmp_path, ("train", "valid")) != before

    (directory / "examples.json").unlink()  # names and sizes stand in
    by_names = split_fingerprint(tmp_path, "train")
    sf.write(directory / "audio" / f"{NAMES[0]}.wav", tone(0, NUM_SAMPLES + 5), SAMPLE_RATE)
    assert split_fingerprint(tmp_path, "train") != by_names

    archive = pack(make_split(tmp_path / "a"), tmp_path / "tar")
    packed = split_fingerprint(tmp_path / "tar", "train")
    assert packed == split_fingerprint(tmp_path / "tar", "train")
    pack(make_split(tmp_path / "b", names=NAMES[:3]), tmp_path / "tar")  # overwrites it
    assert archive.is_file() and split_fingerprint(tmp_path / "tar", "train") != packed
    with pytest.raises(DataError, match="not found"):
        split_fingerprint(tmp_path, "test")


def test_fingerprint_covers_the_audio_and_remembers_file_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nsynth_research.instruments.data.fingerprint as fingerprint

    monkeypatch.setenv(fingerprint.CACHE_ENV, str(tmp_path / "hashes"))
    for meta in (True, False):
        root = tmp_path / f"meta-{meta}"
        directory = make_split(root, meta=meta)
        before = split_fingerprint(root, "train")
        wav = directory / "audio" / f"{NAMES[0]}.wav"
        size = wav.stat().st_size
        sf.write(wav, tone(7), SAMPLE_RATE)  # re-rendered: same name, same size, other audio
        assert wav.stat().st_size == size
        assert split_fingerprint(root, "train") != before

    def unexpected(path: Path) -> str:
        raise AssertionError(f"{path} hashed again although unchanged")

    monkeypatch.setattr(fingerprint, "file_sha256", unexpected)
    assert split_fingerprint(root, "train") == split_fingerprint(root, "train")
