from fractions import Fraction

import pytest

from nsynth_research.core.errors import UserError
from nsynth_research.melody.tokens import (
    BOS_ID,
    REST,
    UNK_ID,
    Event,
    Vocabulary,
    event_token,
    parse_event,
    parse_events,
    quantize,
)


def test_event_round_trip_through_tokens():
    events = [
        Event(60, Fraction(1)),
        Event(61, Fraction(1, 2)),
        Event(REST, Fraction(3, 2)),
        Event(70, Fraction(1, 3)),
    ]
    tokens = [event_token(e) for e in events]
    assert tokens == ["C4/1", "C#4/1/2", "R/3/2", "A#4/1/3"]
    assert [parse_event(t) for t in tokens] == events


def test_enharmonic_spellings_are_one_event():
    assert parse_event("Db4/1") == parse_event("C#4/1") == Event(61, Fraction(1))


def test_quantize_keeps_triplets_exact():
    assert quantize(1 / 3, 12) == Fraction(1, 3)
    assert quantize(0.2500001, 12) == Fraction(1, 4)


@pytest.mark.parametrize("bad", ["C4", "X4/1", "C4/zero", "C4/0", "/1"])
def test_bad_events_are_user_errors(bad):
    with pytest.raises(UserError):
        parse_event(bad)


def test_vocabulary_from_train_counts_unknown_events():
    train = [parse_events("C4/1 D4/1 C4/1"), parse_events("E4/2 C4/1")]
    vocab = Vocabulary.build(train)
    assert vocab.tokens[:3] == ["<unk>", "<bos>", "C4/1"]  # most frequent first
    enc = vocab.encode(parse_events("C4/1 F4/1 D4/1 G4/1"))
    assert enc.unknown == 2
    assert enc.ids[1] == UNK_ID and enc.ids[3] == UNK_ID
    assert BOS_ID not in enc.ids
    assert Vocabulary.from_json(vocab.to_json()).tokens == vocab.tokens


def test_min_count_moves_rare_events_to_unk():
    vocab = Vocabulary.build([parse_events("C4/1 C4/1 D4/1")], min_count=2)
    assert vocab.encode(parse_events("D4/1")).unknown == 1


def test_unknown_primer_event_is_an_error():
    vocab = Vocabulary.build([parse_events("C4/1 D4/1")])
    with pytest.raises(UserError, match="F4/1 is not in the model's vocabulary"):
        vocab.encode_strict(parse_events("C4/1 F4/1"))
