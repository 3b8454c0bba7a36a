"""Per-instrument subsamples: spread over pitch and velocity, deterministic, train only."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise
from pathlib import Path

from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.data.subsample import per_instrument
from nsynth_research.instruments.training import read_notes

VELOCITIES = (25, 50, 75, 100, 127)


def grid(instrument: str, pitches: range, velocities=VELOCITIES, family: int = 4) -> list[Note]:
    return [
        Note(
            note_str=f"{instrument}-{p:03d}-{v:03d}",
            path=f"/nowhere/{instrument}-{p:03d}-{v:03d}.wav",
            family=family,
            instrument_str=instrument,
            instrument=0,
            source=0,
            pitch=p,
            velocity=v,
        )
        for p in pitches
        for v in velocities
    ]


def test_a_cap_plays_the_whole_range_at_every_velocity() -> None:
    notes = grid("keyboard_acoustic_000", range(21, 109))  # NSynth's 88 keys x 5 velocities
    kept = per_instrument(notes, 20)
    pitches = [n.pitch for n in kept]
    assert len(kept) == 20 and len(set(pitches)) == 20
    assert min(pitches) <= 25 and max(pitches) >= 104  # across the range, not its bottom
    assert Counter(n.velocity for n in kept) == dict.fromkeys(VELOCITIES, 4)
    gaps = sorted(pitches)
    assert max(b - a for a, b in pairwise(gaps)) <= 6  # evenly spread


def test_the_subsample_is_deterministic_and_per_instrument() -> None:
    big = grid("organ_electronic_001", range(36, 97))
    small = grid("flute_acoustic_002", range(60, 64), velocities=(100,), family=2)
    notes = big + small
    kept = per_instrument(notes, 12)
    shuffled = notes[:]
    random.Random(3).shuffle(shuffled)
    assert per_instrument(shuffled, 12) == kept
    assert [n.note_str for n in kept] == sorted(n.note_str for n in kept)
    by = Counter(n.instrument_str for n in kept)
    assert by == {"organ_electronic_001": 12, "flute_acoustic_002": 4}  # a small one stays whole


def test_missing_notes_are_filled_from_the_nearest_left() -> None:
    # Velocity 127 exists only on four pitches and 25 on none above 60 (silent notes dropped).
    notes = [
        n
        for n in grid("bass_synthetic_003", range(28, 68))
        if not (n.velocity == 127 and n.pitch % 10) and not (n.velocity == 25 and n.pitch > 60)
    ]
    kept = per_instrument(notes, 30)
    assert len(kept) == 30 and len({n.note_str for n in kept}) == 30
    assert set(kept) <= set(notes)
    assert len({n.pitch for n in kept}) >= 20


def test_only_the_train_split_is_capped(tiny_corpus: Path) -> None:
    config = load_config(None, [f"data.root={tiny_corpus}", "data.max_notes_per_instrument=2"])
    train, valid = read_notes(config, "train"), read_notes(config, "valid")
    all_train = read_split(tiny_corpus, "train")
    assert len(train) < len(all_train)
    assert max(Counter(n.instrument_str for n in train).values()) == 2
    assert {n.instrument_str for n in train} == {n.instrument_str for n in all_train}
    assert len(valid) == len(read_split(tiny_corpus, "valid"))
    uncapped = load_config(None, [f"data.root={tiny_corpus}"])
    assert read_notes(uncapped, "train") == all_train
