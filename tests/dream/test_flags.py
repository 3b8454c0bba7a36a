"""What a dream run says about its own failures, and how it picks real start notes."""

from __future__ import annotations

import numpy as np

from nsynth_research.dream.ascent import Bounds
from nsynth_research.dream.dreams import Dream
from nsynth_research.dream.examples import Pool
from nsynth_research.dream.flags import diagnose, failed, hide_picture
from nsynth_research.dream.starts import pick_start_notes
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.families import FAMILY_INDEX
from nsynth_research.instruments.features.stats import FeatureStats
from tests.instruments.fakes import note_at

CFG = FeatureConfig()
SHAPE = (CFG.frames, CFG.bins)


def _bounds() -> Bounds:
    stats = FeatureStats.from_arrays(np.full(SHAPE, 2.0), np.full(SHAPE, 1.5), 1, CFG)
    return Bounds.of(stats, CFG, frame_energy=100.0, note_energy=5000.0)


def _probs(top: int, p: float) -> np.ndarray:
    out = np.full(11, (1 - p) / 10)
    out[top] = p
    return out


def test_each_failure_is_named_and_a_working_dream_is_not_flagged() -> None:
    bounds = _bounds()
    loud = np.zeros(SHAPE, np.float32)  # the train mean: a real note's level
    rising = np.linspace(0.1, 2.0, 10)
    dreams = [
        Dream(
            "ok", "", loud, "class", target=2, probs_after=_probs(2, 0.9), curves={"score": rising}
        ),
        Dream(
            "lost",
            "",
            loud,
            "class",
            target=2,
            probs_after=_probs(7, 0.6),
            curves={"score": rising},
        ),
        Dream("dead", "", loud, "channel", curves={"score": np.zeros(10)}),
        Dream(
            "quiet",
            "",
            np.broadcast_to(bounds.low, SHAPE).copy(),
            "channel",
            curves={"score": rising},
        ),
        Dream("falling", "", loud, "channel", curves={"score": rising[::-1]}),
    ]
    diagnose(dreams, bounds, silence_db=-60.0)
    flags = {d.key: d.flags for d in dreams}
    assert flags["ok"] == [] and not failed(dreams[0])
    assert flags["lost"] == ["target not reached: reed wins (p 0.60, p(flute) 0.04)"]
    assert [f.split(":")[0] for f in flags["dead"]] == ["no gradient"]
    assert [f.split(":")[0] for f in flags["quiet"]] == ["maximised by silence"]
    assert [f.split(":")[0] for f in flags["falling"]] == ["score did not rise"]
    assert [hide_picture(d) for d in dreams] == [False, False, True, True, False]


def _pool(families: list[int], predicted: list[int], confidence: list[float]) -> Pool:
    notes = [note_at(f"n{i:02d}", f"/x/n{i:02d}.wav", f) for i, f in enumerate(families)]
    logits = np.zeros((len(notes), 11))
    for i, (top, p) in enumerate(zip(predicted, confidence, strict=True)):
        logits[i, top] = 10 * p
    empty = np.zeros(len(notes))
    return Pool(notes, logits, np.zeros((len(notes), 0)), empty, empty)


def test_start_notes_are_distinct_correct_notes_of_other_families() -> None:
    guitar, organ, reed = (FAMILY_INDEX[f] for f in ("guitar", "organ", "reed"))
    pool = _pool(
        families=[guitar, guitar, guitar, organ, organ, reed],
        predicted=[guitar, guitar, reed, organ, reed, reed],
        confidence=[0.9, 0.8, 0.9, 0.7, 0.9, 0.6],
    )
    picks = pick_start_notes(pool, ("organ", "reed"), seeds=2)
    chosen = [p.index for p in picks.values()]
    assert len(chosen) == len(set(chosen)) == 4
    for (target, _), pick in picks.items():
        note = pool.notes[pick.index]
        assert note.family != FAMILY_INDEX[target]
        assert pick.flags == [] and pool.predicted[pick.index] == note.family
    assert 0 in chosen and 2 not in chosen  # the confident correct guitar, not the wrong one


def test_a_start_note_that_is_wrong_or_reused_says_so() -> None:
    guitar, reed = FAMILY_INDEX["guitar"], FAMILY_INDEX["reed"]
    pool = _pool(families=[guitar, reed], predicted=[reed, reed], confidence=[0.9, 0.9])
    picks = pick_start_notes(pool, ("reed",), seeds=3)
    assert picks[("reed", 0)].flags == ["start note misclassified (heard as reed)"]
    assert picks[("reed", 1)].flags == ["start note reused (too few validation notes)"]
