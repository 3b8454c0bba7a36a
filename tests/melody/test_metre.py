"""Metre, key and anacrusis: read from ABC, typed with `|`, overridden, and written into MIDI
that music21 reads back with the same time signature, key and barlines."""

from __future__ import annotations

from fractions import Fraction

import music21
import pytest

from nsynth_research.core.errors import UserError
from nsynth_research.melody.config import TokenConfig
from nsynth_research.melody.metre import (
    Key,
    Metre,
    continuation,
    estimate_key,
    parse_key,
    parse_metre,
    stream_meta,
)
from nsynth_research.melody.primer import frame, read_primer
from nsynth_research.melody.render import to_midi
from nsynth_research.melody.tokens import parse_events

PICKUP_ABC = """X:1
T:pickup
M:3/4
L:1/4
K:D
A | d2 f | e2 d | c3 |]
"""


def test_metre_and_key_parsing():
    assert parse_metre("6/8") == Metre(6, 8) and parse_metre("6/8").bar == 3
    assert parse_metre(" 2 / 4 ").bar == 2
    assert parse_key("Bb") == Key(10, "major") and parse_key("Bb").name == "Bb major"
    assert parse_key("F#m") == Key(6, "minor") and parse_key("E minor") == Key(4, "minor")
    assert parse_key("D").sharps == 2 and parse_key("c minor").sharps == -3
    assert parse_key("A minor").scale == parse_key("C").scale == frozenset({0, 2, 4, 5, 7, 9, 11})
    for bad in ("3", "4/5", "x/4", "0/4"):
        with pytest.raises(UserError, match="METER="):
            parse_metre(bad)
    with pytest.raises(UserError, match="KEY="):
        parse_key("H major")


def test_abc_pickup_metre_and_key_are_read():
    meta = stream_meta(music21.converter.parseData(PICKUP_ABC, format="abc"))
    assert meta.metre == Metre(3, 4) and meta.key == Key(2, "major")
    assert meta.pickup == 1
    no_pickup = PICKUP_ABC.replace("A | d2 f", "d2 f")
    assert stream_meta(music21.converter.parseData(no_pickup, format="abc")).pickup == 0


def test_continuation_completes_the_primers_bar_then_fills_whole_bars():
    # 3/4 with a one-beat pickup: a 4-beat primer ends on the downbeat of bar 2
    assert continuation(Fraction(3), Fraction(1), Fraction(4), 2) == (0, 6)
    # no pickup, 3 beats of 4/4: one beat completes the bar, then 2 bars
    assert continuation(Fraction(4), Fraction(0), Fraction(3), 2) == (3, 9)


def test_typed_primer_barlines_set_the_anacrusis(tmp_path):
    primer = read_primer("G4/1 | C5/1 E5/1 | G5/2", TokenConfig())
    framed = frame(primer, metre=Metre(2, 4), key=None, default_metre=Metre(4, 4))
    assert framed.pickup == 1 and framed.metre_from == "METER="
    assert framed.key == Key(0, "major")  # C E G heard as C major
    plain = frame(
        read_primer("C4/1 E4/1 G4/2", TokenConfig()),
        metre=None,
        key=Key(7),
        default_metre=Metre(2, 4),
    )
    assert plain.pickup == 0 and plain.metre == Metre(2, 4) and plain.key_from == "KEY="
    with pytest.raises(UserError, match="not a whole number"):
        frame(
            read_primer("C5/1 | D5/1 | E5/1 F5/1 G5/1 |", TokenConfig()),
            metre=Metre(2, 4),
            key=None,
            default_metre=Metre(2, 4),
        )


def test_abc_primer_brings_its_metre_key_and_pickup(tmp_path):
    path = tmp_path / "tune.abc"
    path.write_text(PICKUP_ABC)
    framed = frame(
        read_primer(str(path), TokenConfig()), metre=None, key=None, default_metre=Metre(2, 4)
    )
    assert (framed.metre, framed.key, framed.pickup) == (Metre(3, 4), Key(2, "major"), 1)
    assert framed.metre_from == framed.key_from == "the primer"


def test_written_midi_declares_metre_and_key_and_keeps_barlines(tmp_path):
    """A 3/4 tune with a one-beat pickup: read back, the first downbeat note (D5) opens a bar
    and the pickup (A4) sits on the last beat of the bar before it."""
    events = parse_events("A4/1 D5/2 F#5/1 E5/2 D5/1 C#5/3")
    path = tmp_path / "t.mid"
    to_midi(events, Metre(3, 4), Key(2, "major"), Fraction(1)).write(str(path))
    score = music21.converter.parse(str(path))
    (ts,) = score.recurse().getElementsByClass(music21.meter.TimeSignature)
    (ks,) = score.recurse().getElementsByClass(music21.key.KeySignature)
    assert ts.ratioString == "3/4" and ks.sharps == 2
    notes = list(score.recurse().notes)
    assert [n.nameWithOctave for n in notes] == ["A4", "D5", "F#5", "E5", "D5", "C#5"]
    assert notes[0].beat == 3 and notes[1].beat == 1 and notes[1].measureNumber == 2
    assert [n.beat for n in notes[1:]] == [1, 3, 1, 3, 1]
    # read back as a primer, the MIDI gives the same events and the same anacrusis
    primer = read_primer(str(path), TokenConfig())
    assert list(primer.events) == events and primer.pickup == 1
    assert primer.metre == Metre(3, 4) and primer.key.sharps == 2


def test_minor_and_modal_keys_in_midi(tmp_path):
    path = tmp_path / "m.mid"
    to_midi(parse_events("E4/1 G4/1 B4/2"), Metre(4, 4), Key(4, "minor"), Fraction(0)).write(
        str(path)
    )
    (ks,) = music21.converter.parse(str(path)).recurse().getElementsByClass(music21.key.Key)
    assert (ks.tonic.name, ks.mode) == ("E", "minor")
    assert estimate_key(parse_events("A4/1 C5/1 E5/1 A4/2 E4/1 A4/2")).mode == "minor"
