"""The embedded corpus: NSynth layout, instrument-disjoint splits, idempotent rendering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from nsynth_research.config import NUM_SAMPLES, SAMPLE_RATE, CorpusConfig
from nsynth_research.corpus import (
    TEMP_SUFFIX,
    assert_instrument_disjoint,
    assign_splits,
    render_corpus,
)
from nsynth_research.errors import DataError
from nsynth_research.families import FAMILIES
from nsynth_research.nsynth import SPLITS, read_split

OFFICIAL = {
    "note", "note_str", "instrument", "instrument_str", "pitch", "velocity", "sample_rate",
    "qualities", "qualities_str", "instrument_family", "instrument_family_str",
    "instrument_source", "instrument_source_str",
}  # fmt: skip


def examples(root: Path, split: str) -> dict:
    return json.loads((root / f"nsynth-{split}" / "examples.json").read_text())


def test_tiny_corpus_is_nsynth_shaped(tiny_corpus: Path) -> None:
    train = examples(tiny_corpus, "train")
    entry = next(iter(train.values()))
    assert OFFICIAL | {"soundfont", "library", "bank", "program", "preset_name"} <= set(entry)
    assert entry["qualities"] == [0] * 10
    info = sf.info(tiny_corpus / "nsynth-train" / "audio" / f"{entry['note_str']}.wav")
    assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE, 1, NUM_SAMPLES)
    assert info.subtype == "PCM_16"
    assert {e["instrument_family_str"] for e in train.values()} == set(FAMILIES)
    for split in ("valid", "test"):
        assert len({e["instrument_family_str"] for e in examples(tiny_corpus, split).values()}) >= 3
    notes = read_split(tiny_corpus, "train")
    assert len(notes) == len(train)


def test_splits_are_instrument_and_library_disjoint(tiny_corpus: Path) -> None:
    instruments = [{e["instrument_str"] for e in examples(tiny_corpus, s).values()} for s in SPLITS]
    groups = [
        {(e["library"], e["program"]) for e in examples(tiny_corpus, s).values()} for s in SPLITS
    ]
    for sets in (instruments, groups):
        assert not sets[0] & sets[1] and not sets[0] & sets[2] and not sets[1] & sets[2]
    assert_instrument_disjoint(tiny_corpus)


def test_disjointness_check_fires_on_a_leak(tiny_corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "leaky"
    shutil.copytree(tiny_corpus, root)
    train, test = examples(root, "train"), examples(root, "test")
    leaked = next(iter(train.values()))
    test[leaked["note_str"]] = leaked
    (root / "nsynth-test" / "examples.json").write_text(json.dumps(test))
    with pytest.raises(
        DataError, match=f"{leaked['instrument_str']} appears in both train and test"
    ):
        assert_instrument_disjoint(root)


def test_split_assignment_is_seeded_and_keeps_every_family_in_train() -> None:
    groups = {
        "bass": [("a", p) for p in range(32, 40)],
        "vocal": [("a", 52), ("a", 53)],
        "organ": [("a", 16)],
    }
    cfg = CorpusConfig(seed=3)
    first, again = assign_splits(groups, cfg), assign_splits(groups, cfg)
    assert first == again
    assert first != assign_splits(groups, CorpusConfig(seed=4))
    for members in groups.values():
        assert "train" in {first[g] for g in members}
    assert {first[g] for g in groups["bass"]} == {"train", "valid", "test"}
    assert first[("a", 16)] == "train"


def test_rerender_does_nothing_and_other_settings_are_refused(tiny_corpus: Path) -> None:
    again = render_corpus(CorpusConfig(root=tiny_corpus, size="tiny"), progress=False)
    assert again.rendered == 0
    assert sum(again.notes["train"].values()) == len(examples(tiny_corpus, "train"))
    with pytest.raises(DataError, match="other settings"):
        render_corpus(CorpusConfig(root=tiny_corpus, size="tiny", seed=9), progress=False)


def test_an_interrupted_render_resumes_and_cleans_up(tiny_corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "resumed"
    shutil.copytree(tiny_corpus, root)
    marker = json.loads((root / "render.json").read_text())
    (root / "render.json").write_text(json.dumps({**marker, "complete": False}))
    audio = root / "nsynth-valid" / "audio"
    lost = sorted(audio.glob("*.wav"))[:3]
    for path in lost:
        path.unlink()
    half = audio / f"{lost[0].name}{TEMP_SUFFIX}"
    half.write_bytes(b"half a wav")
    summary = render_corpus(CorpusConfig(root=root, size="tiny"), progress=False)
    assert summary.rendered == 3
    assert all(p.is_file() for p in lost) and not half.exists()
    assert examples(root, "valid") == examples(tiny_corpus, "valid")
    assert "rendered 3 notes" in summary.format_table()


def test_missing_soundfont_is_named(tmp_path: Path) -> None:
    cfg = CorpusConfig(root=tmp_path / "c", soundfonts=(tmp_path / "FluidR3_GM.sf2",))
    with pytest.raises(DataError, match=r"SoundFont not found: .*FluidR3_GM.sf2"):
        render_corpus(cfg, progress=False)
