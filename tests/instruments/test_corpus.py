"""The embedded corpus: NSynth layout, instrument-disjoint splits, idempotent rendering."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import nsynth_research.instruments.corpus.build as build
import nsynth_research.instruments.corpus.render as render
from nsynth_research.core.errors import DataError
from nsynth_research.core.files import TEMP_SUFFIX
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, CorpusConfig
from nsynth_research.instruments.corpus.build import MARKER_NAME, render_corpus
from nsynth_research.instruments.corpus.plan import (
    PITCH_RANGES,
    assign_splits,
    default_soundfont,
    note_plan,
    plan_instruments,
    program_source,
)
from nsynth_research.instruments.corpus.samples import preset_samples
from nsynth_research.instruments.corpus.summary import SAMPLES_NAME, assert_instrument_disjoint
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.notes import SPLITS
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.families import FAMILIES
from tests.instruments.sf2_builder import tone, write_sf2

OFFICIAL = {
    "note", "note_str", "instrument", "instrument_str", "pitch", "velocity", "sample_rate",
    "qualities", "qualities_str", "instrument_family", "instrument_family_str",
    "instrument_source", "instrument_source_str",
}  # fmt: skip
EXTRA = {"soundfont", "library", "bank", "program", "preset_name", "sample_group"}
INSTRUMENT = re.compile(rf"^({'|'.join(FAMILIES)})_(acoustic|electronic|synthetic)_\d{{3}}$")


def examples(root: Path, split: str) -> dict:
    return json.loads((root / f"nsynth-{split}" / "examples.json").read_text())


def copy(tiny_corpus: Path, tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(tiny_corpus, root)
    return root


def test_tiny_corpus_is_nsynth_shaped(tiny_corpus: Path) -> None:
    assert (tiny_corpus / MARKER_NAME).is_file()
    ids: dict[str, int] = {}
    for split in SPLITS:
        entries = examples(tiny_corpus, split)
        audio = tiny_corpus / f"nsynth-{split}" / "audio"
        assert {p.name for p in audio.iterdir()} == {f"{name}.wav" for name in entries}
        for name, e in entries.items():
            assert set(e) == OFFICIAL | EXTRA
            assert (
                e["note_str"]
                == name
                == f"{e['instrument_str']}-{e['pitch']:03d}-{e['velocity']:03d}"
            )
            assert INSTRUMENT.match(e["instrument_str"])
            assert e["instrument_str"].startswith(
                f"{e['instrument_family_str']}_{e['instrument_source_str']}_"
            )
            assert FAMILIES[e["instrument_family"]] == e["instrument_family_str"]
            assert ["acoustic", "electronic", "synthetic"][e["instrument_source"]] == e[
                "instrument_source_str"
            ]
            low, high = PITCH_RANGES[e["instrument_family_str"]]
            assert low <= e["pitch"] <= high and 21 <= e["pitch"] <= 108
            assert e["velocity"] in {25, 50, 75, 100, 127} and e["sample_rate"] == SAMPLE_RATE
            assert e["qualities"] == [0] * 10 and e["qualities_str"] == []
            assert (e["soundfont"], e["bank"]) == ("TimGM6mb.sf2", 0)
            assert e["library"] == "TimGM6mb" and e["preset_name"]
            assert ids.setdefault(e["instrument_str"], e["instrument"]) == e["instrument"]
            info = sf.info(audio / f"{name}.wav")
            assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE, 1, NUM_SAMPLES)
            assert info.format == "WAV" and info.subtype == "PCM_16"
        assert len(read_split(tiny_corpus, split)) == len(entries)
    assert len(set(ids.values())) == len(ids)  # one id per instrument
    train = examples(tiny_corpus, "train").values()
    assert {e["instrument_family_str"] for e in train} == set(FAMILIES)
    for split in ("valid", "test"):
        assert len({e["instrument_family_str"] for e in examples(tiny_corpus, split).values()}) >= 3
    total = sum(len(examples(tiny_corpus, s)) for s in SPLITS)
    assert 100 <= total <= 250


def test_tiny_notes_sound_at_their_pitch(tiny_corpus: Path) -> None:
    """Rendered at 48 kHz and decimated right: the strongest partial is a harmonic of the
    note (or, for organ drawbars, a sub-octave), there is sound, headroom, no DC."""
    in_tune = 0
    notes = read_split(tiny_corpus, "train")
    for note in notes:
        audio = load_audio(note.path)
        assert 0.01 < np.abs(audio).max() < 1.0
        assert abs(audio.mean()) < 0.01 * np.abs(audio).max()
        first = audio[: 2 * SAMPLE_RATE] * np.hanning(2 * SAMPLE_RATE)
        peak = np.fft.rfftfreq(first.size, 1 / SAMPLE_RATE)[np.abs(np.fft.rfft(first)).argmax()]
        ratio = 2 * peak / (440 * 2 ** ((note.pitch - 69) / 12))  # in half-fundamentals
        in_tune += round(ratio) >= 1 and abs(1200 * np.log2(ratio / round(ratio))) < 60
        held, released = np.abs(audio[16000:48000]).max(), np.abs(audio[-4000:]).max()
        assert released < held  # the note is released after 3 s
    assert in_tune >= 0.85 * len(notes)


def test_name_only_reading_agrees_with_examples_json(tiny_corpus: Path, tmp_path: Path) -> None:
    root = copy(tiny_corpus, tmp_path, "names")
    with_meta = read_split(root, "valid")
    (root / "nsynth-valid" / "examples.json").unlink()
    from_names = read_split(root, "valid")
    assert [(n.note_str, n.family, n.source, n.pitch, n.velocity) for n in from_names] == [
        (n.note_str, n.family, n.source, n.pitch, n.velocity) for n in with_meta
    ]


def test_splits_are_instrument_and_library_disjoint(tiny_corpus: Path) -> None:
    instruments = [{e["instrument_str"] for e in examples(tiny_corpus, s).values()} for s in SPLITS]
    groups = [
        {(e["library"], e["program"]) for e in examples(tiny_corpus, s).values()} for s in SPLITS
    ]
    for sets in (instruments, groups):
        assert not sets[0] & sets[1] and not sets[0] & sets[2] and not sets[1] & sets[2]
    assert_instrument_disjoint(tiny_corpus)


def test_disjointness_check_fires_on_a_leak(tiny_corpus: Path, tmp_path: Path) -> None:
    root = copy(tiny_corpus, tmp_path, "leaky")
    train, test = examples(root, "train"), examples(root, "test")
    leaked = next(iter(train.values()))
    test[leaked["note_str"]] = leaked
    (root / "nsynth-test" / "examples.json").write_text(json.dumps(test))
    with pytest.raises(DataError) as err:
        assert_instrument_disjoint(root)
    message = str(err.value)
    assert "not sample-disjoint" in message
    assert f"instrument {leaked['instrument_str']} (train and test)" in message
    assert f"library TimGM6mb program {leaked['program']} (train and test)" in message

    # Another preset of a program already in train (a second SoundFont of the same library).
    root = copy(tiny_corpus, tmp_path, "shared-samples")
    valid = examples(root, "valid")
    twin = {
        **leaked,
        "instrument_str": "bass_acoustic_999",
        "note_str": "bass_acoustic_999-040-100",
    }
    valid[twin["note_str"]] = twin
    (root / "nsynth-valid" / "examples.json").write_text(json.dumps(valid))
    with pytest.raises(DataError) as err:
        assert_instrument_disjoint(root)
    assert "2 instrument(s), sample group(s) or sample(s)" in str(err.value)
    assert f"program {leaked['program']} (train and valid)" in str(err.value)


def test_split_assignment_is_seeded_and_keeps_every_family_in_train() -> None:
    groups = {
        **{f"bass{p}": ["bass"] for p in range(32, 40)},
        "vocal52": ["vocal"],
        "vocal53": ["vocal", "vocal"],
        "organ": ["organ"],
        "flute": ["flute"],
        **{f"string{p}": ["string"] for p in range(3)},
        "shared waveform": ["bass", "string", "organ"],
    }
    cfg = CorpusConfig(seed=3)
    first = assign_splits(groups, cfg)
    assert first == assign_splits(groups, cfg)
    assert any(first != assign_splits(groups, CorpusConfig(seed=seed)) for seed in range(4, 10))
    for family in ("bass", "vocal", "organ", "string"):
        assert "train" in {first[g] for g, fams in groups.items() if family in fams}
    bass = [first[g] for g, fams in groups.items() if "bass" in fams]
    assert Counter(bass) == {"train": 7, "valid": 1, "test": 1}
    assert {first[g] for g, fams in groups.items() if "string" in fams} == set(SPLITS)
    assert sorted([first["vocal52"], first["vocal53"]]) in (["test", "train"], ["train", "valid"])
    assert first["flute"] == "train"  # a family's only group trains


def sample_splits(instruments) -> dict[str, set[str]]:
    splits: dict[str, set[str]] = {}
    for inst in instruments:
        for digest in inst.samples:
            splits.setdefault(digest, set()).add(inst.split)
    return splits


def test_presets_sharing_a_sample_land_in_one_split(tmp_path: Path) -> None:
    """Within one SoundFont and across two, presets that play the same sample data are one
    group; the corpus check catches a sample heard in two splits."""
    tones = [tone(i) for i in range(8)]
    # Programs 0 and 1 share tone 0; 2 plays tones 1 and 2; 3-5 play their own.
    first = write_sf2(
        tmp_path / "a.sf2", tones, {0: [0], 1: [0, 3], 2: [1, 2], 3: [4], 4: [5], 5: [6]}
    )
    # Another SoundFont whose program 6 copies tone 2 (a library reusing a recording).
    second = write_sf2(tmp_path / "b.sf2", [tones[2], tones[7]], {6: [0], 7: [1]})
    cfg = CorpusConfig(soundfonts=(first, second), size="full")
    samples = preset_samples(first)
    assert samples[(0, 0)] < samples[(0, 1)] and not samples[(0, 0)] & samples[(0, 2)]
    for seed in range(6):
        plan = {
            (i.soundfont.name, i.program): i
            for i in plan_instruments(cfg.model_copy(update={"seed": seed}))
        }
        assert plan[("a.sf2", 0)].split == plan[("a.sf2", 1)].split
        assert plan[("a.sf2", 0)].group == plan[("a.sf2", 1)].group
        assert plan[("a.sf2", 2)].split == plan[("b.sf2", 6)].split
        assert all(len(s) == 1 for s in sample_splits(plan.values()).values())
        assert len({i.group for i in plan.values()}) == 6

    root = render_corpus(
        cfg.model_copy(update={"root": tmp_path / "c", "size": "tiny"}), progress=False
    ).root
    assert_instrument_disjoint(root)
    listed = json.loads((root / SAMPLES_NAME).read_text())
    moved = next(n for n, info in listed.items() if info["split"] == "train")
    other = next(n for n, info in listed.items() if info["split"] != "train")
    listed[other]["samples"].append(listed[moved]["samples"][0])
    (root / SAMPLES_NAME).write_text(json.dumps(listed))
    with pytest.raises(DataError, match=r"not sample-disjoint.*sample [0-9a-f]{16} \(train and"):
        assert_instrument_disjoint(root)


def test_default_corpus_shares_no_sample_across_splits() -> None:
    """TimGM6mb reuses samples across many presets (the pianos, the strings, a waveform
    shared by bass, brass, flute and synth presets); seed 0's default plan splits none."""
    plan = plan_instruments(CorpusConfig(size="default", seed=0))
    assert all(len(splits) == 1 for splits in sample_splits(plan).values())
    # The same, from the SoundFont's own sample tables rather than the plan's record of them.
    tables = {sf: preset_samples(sf) for sf in {i.soundfont for i in plan}}  # one parse each
    played = {i: tables[i.soundfont][(0, i.program)] for i in plan}
    assert sum(len(s) for s in played.values()) > len(plan)  # presets do play samples
    heard_in: dict[str, set[str]] = {}
    for inst, hashes in played.items():
        for sample in hashes:
            heard_in.setdefault(sample, set()).add(inst.split)
    assert all(len(splits) == 1 for splits in heard_in.values())
    assert len(plan) == 85 and {i.family for i in plan if i.split == "train"} == set(FAMILIES)
    for split in ("valid", "test"):
        assert len({i.family for i in plan if i.split == split}) >= 8


def test_sizes_and_naming() -> None:
    def planned(size: str) -> int:
        return sum(len(note_plan(i, size)) for i in plan_instruments(CorpusConfig(size=size)))

    assert 2500 <= planned("default") <= 3500
    assert planned("full") > 5 * planned("default")
    full = plan_instruments(CorpusConfig(size="full"))
    assert len(full) == 85  # every melodic GM program that maps to a family
    assert len({i.instrument_str for i in full}) == len(full)
    flute = next(i for i in full if i.family == "flute")
    low, high = PITCH_RANGES["flute"]
    assert note_plan(flute, "full") == [
        (p, v) for p in range(low, high + 1) for v in (25, 50, 75, 100, 127)
    ]
    assert [program_source(p) for p in (0, 4, 19, 24, 27, 32, 33, 38, 56, 81)] == [
        "acoustic", "electronic", "acoustic", "acoustic", "electronic", "acoustic",
        "electronic", "synthetic", "acoustic", "synthetic",
    ]  # fmt: skip
    assert all(
        i.instrument_str.startswith("synth_lead_synthetic_") for i in full if i.program == 81
    )
    assert default_soundfont().name == "TimGM6mb.sf2" and default_soundfont().is_file()


def test_rerender_does_nothing_and_other_settings_are_refused(tiny_corpus: Path) -> None:
    stamp = (tiny_corpus / MARKER_NAME).stat().st_mtime_ns
    again = render_corpus(CorpusConfig(root=tiny_corpus, size="tiny"), progress=False)
    assert again.rendered == 0 and again.seconds < 5
    assert sum(again.notes["train"].values()) == len(examples(tiny_corpus, "train"))
    planned = Counter(i.split for i in plan_instruments(CorpusConfig(size="tiny")))
    assert again.instruments == dict(planned) and again.instruments["train"] == 11
    assert "presets" in again.format_table() and "sample groups" in again.format_table()
    assert "up to date, nothing rendered" in again.format_table()
    assert (tiny_corpus / MARKER_NAME).stat().st_mtime_ns == stamp
    for change in ({"seed": 9}, {"size": "default"}, {"valid_fraction": 0.2}):
        with pytest.raises(DataError) as err:
            render_corpus(CorpusConfig(root=tiny_corpus, **change), progress=False)
        assert "rendered with other settings" in str(err.value)
        assert "choose another corpus root" in str(err.value)


def test_an_interrupted_render_resumes_and_cleans_up(tiny_corpus: Path, tmp_path: Path) -> None:
    root = copy(tiny_corpus, tmp_path, "resumed")
    marker = json.loads((root / MARKER_NAME).read_text())
    (root / MARKER_NAME).write_text(json.dumps({**marker, "complete": False}))
    (root / "nsynth-valid" / "examples.json").unlink()  # it is written last
    audio = root / "nsynth-valid" / "audio"
    lost = sorted(audio.glob("*.wav"))[:3]
    for path in lost:
        path.unlink()
    half = audio / f".{lost[0].name}.killed{TEMP_SUFFIX}"  # what a killed writer leaves
    half.write_bytes(b"half a wav")
    summary = render_corpus(CorpusConfig(root=root, size="tiny"), progress=False)
    assert summary.rendered == 3
    assert all(p.is_file() for p in lost) and not list(root.rglob(f"*{TEMP_SUFFIX}"))
    assert examples(root, "valid") == examples(tiny_corpus, "valid")
    for path in lost:
        reference = tiny_corpus / "nsynth-valid" / "audio" / path.name
        np.testing.assert_allclose(load_audio(str(path)), load_audio(str(reference)), atol=1e-4)
    assert "rendered 3 notes" in summary.format_table()
    assert json.loads((root / MARKER_NAME).read_text())["complete"] is True

    # A complete corpus that lost a file is repaired the same way.
    lost[1].unlink()
    assert render_corpus(CorpusConfig(root=root, size="tiny"), progress=False).rendered == 1
    assert render_corpus(CorpusConfig(root=root, size="tiny"), progress=False).rendered == 0


def test_silent_and_clipping_notes_are_dropped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Gain pushing the loud notes past full scale, a floor making the quiet ones "silent".
    monkeypatch.setattr(render, "TARGET_PEAK", 1.6)
    monkeypatch.setattr(build, "SILENT_PEAK", 0.2)
    root = tmp_path / "dropping"
    summary = render_corpus(CorpusConfig(root=root, size="tiny"), progress=False)
    planned = sum(len(note_plan(i, "tiny")) for i in plan_instruments(CorpusConfig(size="tiny")))
    kept = sum(sum(s.values()) for s in summary.notes.values())
    assert summary.dropped_silent > 0 and summary.dropped_clipped > 0
    dropped = summary.dropped_silent + summary.dropped_clipped
    assert kept + dropped == planned and summary.rendered == kept
    peaks = [np.abs(load_audio(n.path)).max() for s in SPLITS for n in read_split(root, s)]
    assert min(peaks) >= 0.2 and max(peaks) < 1.0
    table = summary.format_table()
    assert f"dropped {summary.dropped_silent} silent and {summary.dropped_clipped} clipped" in table
    again = render_corpus(CorpusConfig(root=root, size="tiny"), progress=False)
    assert (again.dropped_silent, again.dropped_clipped) == (
        summary.dropped_silent,
        summary.dropped_clipped,
    )


def test_bad_soundfonts_and_roots_are_refused(tmp_path: Path) -> None:
    cfg = CorpusConfig(root=tmp_path / "c", soundfonts=(tmp_path / "FluidR3_GM.sf2",))
    with pytest.raises(DataError, match=r"SoundFont not found: .*FluidR3_GM\.sf2"):
        render_corpus(cfg, progress=False)
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"RIFF not a soundfont")
    with pytest.raises(DataError, match=r"junk\.sf2: not a readable SF2/SF3 SoundFont"):
        render_corpus(CorpusConfig(root=tmp_path / "d", soundfonts=(junk,)), progress=False)

    download = tmp_path / "nsynth"
    (download / "nsynth-train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"is not a rendered corpus .*nsynth-train"):
        render_corpus(CorpusConfig(root=download, size="tiny"), progress=False)
    assert [p.name for p in download.iterdir()] == ["nsynth-train"]  # left untouched
