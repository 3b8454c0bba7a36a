from fractions import Fraction

import numpy as np

from nsynth_research.melody.config import SplitConfig, TransposeConfig
from nsynth_research.melody.corpus import Tune
from nsynth_research.melody.data import apply_keys, split_tunes, to_common_key, windows
from nsynth_research.melody.tokens import BOS_ID, Event


def _tunes(n: int) -> list[Tune]:
    return [
        Tune(f"t{i:03d}", "", (Event(60 + i % 12, Fraction(1)),) * 3, i % 12, Fraction(4))
        for i in range(n)
    ]


def test_split_is_tune_disjoint_complete_and_seeded():
    tunes = _tunes(50)
    splits = split_tunes(tunes, SplitConfig(valid=0.1, test=0.2, seed=3))
    ids = {name: {t.id for t in part} for name, part in splits.items()}
    assert not ids["train"] & ids["valid"] and not ids["train"] & ids["test"]
    assert not ids["valid"] & ids["test"]
    assert set().union(*ids.values()) == {t.id for t in tunes}
    assert (len(ids["valid"]), len(ids["test"])) == (5, 10)
    # the same seed gives the same split whatever order the tunes come in
    again = split_tunes(list(reversed(tunes)), SplitConfig(valid=0.1, test=0.2, seed=3))
    assert {t.id for t in again["test"]} == ids["test"]
    other = split_tunes(tunes, SplitConfig(valid=0.1, test=0.2, seed=4))
    assert {t.id for t in other["test"]} != ids["test"]


def test_windows_target_every_event_with_bos_padding():
    x, y = windows([5, 6, 7], 2)
    assert y.tolist() == [5, 6, 7]
    assert x.tolist() == [[BOS_ID, BOS_ID], [BOS_ID, 5], [5, 6]]


def test_augmentation_touches_train_only():
    splits = {"train": _tunes(2), "valid": _tunes(1), "test": _tunes(1)}
    out = apply_keys(splits, TransposeConfig(mode="augment", semitones=1))
    assert len(out["train"]) == 2 * 3 and out["valid"] == splits["valid"]
    assert out["test"] == splits["test"]


def test_common_key_moves_the_tonic_to_c():
    tune = Tune("a", "", (Event(67, Fraction(1)),), 7, None)  # G major, G4
    moved = to_common_key(tune)
    assert moved.tonic == 0 and moved.events[0].pitch == 72  # +5 semitones, nearest C
    assert np.all([e.duration for e in moved.events] == [Fraction(1)])
