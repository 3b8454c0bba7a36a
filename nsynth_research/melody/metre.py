"""Metre, key and bar positions: what a written tune declares and where its barlines fall.

A tune's metre (`2/4`) and key (`G major`) travel with it from the ABC or MIDI it was read
from into the MIDI it is written to. Bar positions count from the tune's first downbeat, so
an anacrusis (a pickup shorter than a bar before the first barline) shifts every position
by `bar - pickup`; counting from the first note instead would put every barline in the wrong
place for a tune that starts on an upbeat. Key signatures are what out-of-key notes are
measured against: the seven pitch classes of the signature, whatever the mode.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import music21

from nsynth_research.core.errors import UserError
from nsynth_research.melody.tokens import REST, Event

_METRE = re.compile(r"^\s*(\d{1,2})\s*/\s*(1|2|4|8|16|32)\s*$")
_KEY = re.compile(r"^\s*([A-Ga-g])\s*([#b-]?)\s*(m|min|minor|maj|major)?\s*$")
MODES = ("major", "minor")
#: Pitch classes of the major scale above its tonic.
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)


@dataclass(frozen=True)
class Metre:
    """A time signature: `numerator/denominator`, bar length in quarter notes."""

    numerator: int
    denominator: int

    @property
    def ratio(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @property
    def bar(self) -> Fraction:
        return Fraction(4 * self.numerator, self.denominator)


def parse_metre(text: str) -> Metre:
    """`2/4`, `6/8`, `3/4` ... -> Metre; anything else is a one-line UserError."""
    found = _METRE.match(text)
    if not found or int(found[1]) < 1:
        raise UserError(f"METER={text!r}: give a time signature such as 2/4, 3/4, 4/4 or 6/8")
    return Metre(int(found[1]), int(found[2]))


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class and mode (`major`, `minor` or a church mode)."""

    tonic: int
    mode: str = "major"

    @property
    def m21(self) -> music21.key.Key:
        """The music21 key with the spelling of fewest accidentals (Bb, not A#)."""
        for sharps in sorted(range(-7, 8), key=abs):
            key = music21.key.KeySignature(sharps).asKey(self.mode)
            if key.tonic.pitchClass == self.tonic:
                return key
        raise ValueError(f"no key signature has tonic {self.tonic} in {self.mode}")

    @property
    def name(self) -> str:
        key = self.m21
        return f"{key.tonic.name.replace('-', 'b')} {self.mode}"

    @property
    def sharps(self) -> int:
        return int(self.m21.sharps)

    @property
    def scale(self) -> frozenset[int]:
        """Pitch classes of the key signature (7 of 12; the same for relative keys)."""
        major_tonic = (7 * self.sharps) % 12
        return frozenset((major_tonic + s) % 12 for s in MAJOR_STEPS)


def parse_key(text: str) -> Key:
    """`G`, `Bb`, `F#m`, `E minor`, `eb major` -> Key; anything else is a UserError."""
    found = _KEY.match(text)
    if not found:
        raise UserError(f"KEY={text!r}: give a key such as C, G, Bb, F#m or 'E minor'")
    letter, accidental = found[1].upper(), found[2].replace("b", "-")
    minor = found[3] in ("m", "min", "minor")
    pc = music21.pitch.Pitch(letter + accidental).pitchClass
    return Key(int(pc), "minor" if minor else "major")


def estimate_key(events: Sequence[Event]) -> Key:
    """Krumhansl-Schmuckler key of a melody's notes (music21), for primers without one."""
    stream: music21.stream.Stream[music21.note.Note] = music21.stream.Stream()
    for e in events:
        if e.pitch != REST:
            stream.append(music21.note.Note(e.pitch, quarterLength=float(e.duration)))
    found = stream.analyze("key")
    return Key(int(found.tonic.pitchClass), found.mode if found.mode in MODES else "major")


@dataclass(frozen=True)
class StreamMeta:
    """What a parsed music21 stream declares: key, metre and anacrusis (0 when none)."""

    key: Key | None
    metre: Metre | None
    pickup: Fraction = Fraction(0)


def stream_meta(stream: music21.stream.Stream) -> StreamMeta:
    """The first key, the first time signature and the pickup bar of a music21 stream."""
    keys = list(stream.recurse().getElementsByClass(music21.key.KeySignature))
    key = None
    if keys:
        k = keys[0] if isinstance(keys[0], music21.key.Key) else keys[0].asKey()
        key = Key(int(k.tonic.pitchClass), str(k.mode))
    meters = list(stream.recurse().getElementsByClass(music21.meter.TimeSignature))
    metre = Metre(int(meters[0].numerator), int(meters[0].denominator)) if meters else None
    pickup = Fraction(0)
    parts = list(getattr(stream, "parts", []))
    part = parts[0] if parts else stream
    measures = list(part.getElementsByClass(music21.stream.Measure))
    if metre is not None and measures:
        first = Fraction(measures[0].duration.quarterLength).limit_denominator(96)
        if measures[0].paddingLeft > 0 and 0 < first < metre.bar:
            pickup = first
    return StreamMeta(key, metre, pickup)


def downbeat_shift(bar: Fraction, pickup: Fraction) -> Fraction:
    """Where the first event sits in its bar: `bar - pickup` for an anacrusis, else 0."""
    return (bar - pickup) % bar


def positions(
    events: Sequence[Event], bar: Fraction, pickup: Fraction = Fraction(0)
) -> Iterator[tuple[Event, int, Fraction]]:
    """(event, bar index, offset within the bar) of each event; bar 0 holds the pickup."""
    t = downbeat_shift(bar, pickup)
    for e in events:
        yield e, int(t // bar), t % bar
        t += e.duration


def crosses_barline(offset: Fraction, duration: Fraction, bar: Fraction) -> bool:
    """A note that starts in one bar and sounds past the next barline (a tie in notation)."""
    return offset + duration > bar


def continuation(
    bar: Fraction, pickup: Fraction, primer_length: Fraction, bars: int
) -> tuple[Fraction, Fraction]:
    """(offset in its bar where a continuation starts, quarters it lasts): it completes the
    primer's last bar, then fills `bars` whole bars."""
    start = (downbeat_shift(bar, pickup) + primer_length) % bar
    return start, (bar - start) % bar + bars * bar
