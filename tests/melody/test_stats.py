"""Melody statistics on hand-made melodies whose answers are known."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from nsynth_research.melody.metre import Key
from nsynth_research.melody.references import take
from nsynth_research.melody.report import compare_sets, table
from nsynth_research.melody.stats import (
    Melody,
    histogram,
    melody_stats,
    real_draws,
    reference_histograms,
    set_stats,
    tv_distance,
)
from nsynth_research.melody.tokens import parse_events

C, G = Key(0), Key(7)


def _m(text: str, key: Key = C, bar: Fraction = Fraction(2), offset: Fraction = Fraction(0)):
    return Melody(tuple(parse_events(text)), key, bar, offset)


def test_out_of_key_counts_notes_outside_the_signature():
    # in C: F#4 and C#5 are outside; in G: F#4 is inside, F4 outside
    melody = _m("C4/1 F#4/1 G4/1 C#5/1")
    assert melody_stats(melody)["out_of_key"] == 0.5
    assert melody_stats(_m("G4/1 F#4/1 F4/1 D5/1", key=G))["out_of_key"] == 0.25


def test_notes_across_barlines_respect_the_anacrusis():
    # 2/4 from the downbeat: the half note on beat 2 crosses; from beat 2 (a pickup) it would
    # be the half note on the downbeat, which does not
    melody = parse_events("C5/1 D5/2 E5/1")
    assert melody_stats(Melody(tuple(melody), C, Fraction(2)))["across_barline"] == pytest.approx(
        1 / 3
    )
    assert melody_stats(Melody(tuple(melody), C, Fraction(2), Fraction(1)))["across_barline"] == 0
    # rests never count as notes
    assert melody_stats(_m("C5/1 R/2 E5/1"))["across_barline"] == 0


def test_repeated_bars_runs_range_and_steps():
    stats = melody_stats(_m("C5/1 D5/1 C5/1 D5/1 E5/1 E5/1 C5/1 D5/1"))
    assert stats["repeated_bars"] == pytest.approx(2 / 3)  # bars 2 and 4 repeat bar 1
    assert stats["longest_run"] == 2
    assert stats["pitch_range"] == 4
    assert stats["mean_abs_interval"] == pytest.approx((2 + 2 + 2 + 2 + 0 + 4 + 2) / 7)
    assert melody_stats(_m("C5/1 " * 32))["longest_run"] == 32
    assert melody_stats(_m("C5/1 " * 32))["pitch_class_entropy"] == 0
    chromatic = " ".join(
        f"{pc}/1"
        for pc in ("C4", "C#4", "D4", "D#4", "E4", "F4", "F#4", "G4", "G#4", "A4", "A#4", "B4")
    )
    assert melody_stats(_m(chromatic))["pitch_class_entropy"] == pytest.approx(np.log2(12))


def test_histograms_are_key_relative():
    c_tune = _m("C4/1 E4/1 G4/1/2")
    g_tune = _m("G4/1 B4/1 D5/1/2", key=G)
    assert histogram(c_tune, "degree").tolist() == histogram(g_tune, "degree").tolist()
    assert np.flatnonzero(histogram(c_tune, "degree")).tolist() == [0, 4, 7]
    assert histogram(c_tune, "interval")[12 + 4] == 1 and histogram(c_tune, "interval")[12 + 3] == 1
    lengths = histogram(_m("C4/1 E4/1/2 G4/5"), "length")
    assert lengths.sum() == 3 and lengths[-1] == 1  # 5 quarters is "other"


def test_tv_distance_and_set_statistics():
    assert tv_distance(np.array([1, 0]), np.array([0, 1])) == 1.0
    assert tv_distance(np.array([1, 1]), np.array([2, 2])) == 0.0
    real = [_m("C5/1 D5/1 E5/2"), _m("E5/1 D5/1 C5/2")]
    ref = reference_histograms(real)
    assert set_stats(real, ref)["tv_degree"] == 0
    stuck = set_stats([_m("C#5/1 " * 8)], ref)
    assert stuck["tv_degree"] == pytest.approx(1.0) and stuck["out_of_key"] == 1.0
    assert stuck["longest_run"] == 8


def test_real_sets_calibrate_the_flags_and_a_stuck_set_is_flagged():
    rng = np.random.default_rng(0)
    scale = ["C5", "D5", "E5", "F5", "G5", "A5"]
    real, fresh = [
        [_m(" ".join(f"{scale[i]}/1" for i in rng.integers(0, len(scale), 8))) for _ in range(n)]
        for n in (60, 8)
    ]
    draws = real_draws(real, 8, draws=50)
    assert len(draws) == 50 and all(d["out_of_key"] == 0 for d in draws)
    sets = {"real-like": fresh, "stuck": [_m("C#5/1 " * 8)] * 8, "one": [fresh[0]]}
    comparison = compare_sets(sets, real)
    assert sorted(comparison.real) == [1, 8]  # real sets of each size a set has
    spread = comparison.real[8].spread["tv_degree"]
    assert spread.low < spread.median < spread.high
    stuck = comparison.outside("stuck")
    assert {"out-of-key notes", "longest same-pitch run", "TV scale degree"} <= set(stuck)
    assert len(comparison.outside("real-like")) <= comparison.real[8].flags.high < len(stuck)
    assert len(comparison.outside("one")) <= comparison.real[1].flags.high
    headers, rows = table(comparison)
    assert rows[1][0] == "stuck" and rows[1][headers.index("out-of-key notes (%)")] == 100.0
    assert rows[1][headers.index("flags")] == len(stuck)


def test_take_cuts_the_excerpt_at_both_ends():
    events = parse_events("C5/1 D5/2 E5/1")
    assert [str(e.duration) for e in take(events, Fraction(2), Fraction(2))] == ["1", "1"]
