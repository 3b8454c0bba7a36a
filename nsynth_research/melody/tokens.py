"""Events and the vocabulary: a melody is a list of (pitch or rest, duration) events.

An event is written `C#4/1/2` (pitch name with octave, then the duration in quarter lengths
as a fraction) or `R/1` for a rest; the same spelling is accepted for primers, so what a
person types is what the model reads. Pitches are MIDI numbers inside, so enharmonic
spellings (Db4, C#4) are one event. The vocabulary is built from train tunes only; events it
lacks map to UNK and are counted, never dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import pretty_midi

from nsynth_research.core.errors import UserError

UNK, BOS = "<unk>", "<bos>"
UNK_ID, BOS_ID = 0, 1
REST = -1


class Event(NamedTuple):
    """One melody event: MIDI pitch (REST for a rest) and duration in quarter lengths."""

    pitch: int
    duration: Fraction


def quantize(quarter_length: float | Fraction, max_denominator: int) -> Fraction:
    """Nearest fraction of a quarter with a bounded denominator (music21 gives floats/
    Fractions; 1/3 must stay exactly 1/3 so triplets are one event, not three)."""
    return Fraction(quarter_length).limit_denominator(max_denominator)


def event_token(event: Event) -> str:
    pitch = "R" if event.pitch == REST else pretty_midi.note_number_to_name(event.pitch)
    return f"{pitch}/{event.duration}"


def parse_event(text: str) -> Event:
    """`C4/1`, `Eb4/1/2`, `R/3/2` -> Event; anything else is a UserError naming the text."""
    name, sep, dur = text.strip().partition("/")
    if not sep or not name:
        raise UserError(f"event {text!r} is not of the form PITCH/DURATION, e.g. C4/1 or R/1/2")
    try:
        duration = Fraction(dur)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"event {text!r}: duration {dur!r} is not a number or fraction") from None
    if duration <= 0:
        raise UserError(f"event {text!r}: duration must be positive")
    if name.upper() == "R":
        return Event(REST, duration)
    try:
        pitch = pretty_midi.note_name_to_number(name)
    except ValueError:
        raise UserError(f"event {text!r}: {name!r} is not a pitch like C4, F#5 or Bb3") from None
    return Event(int(pitch), duration)


def parse_events(text: str) -> list[Event]:
    """A space-separated event string (`C4/1 E4/1 G4/2`) -> events."""
    return [parse_event(word) for word in text.split()]


@dataclass(frozen=True)
class Encoded:
    """Token ids of a tune plus how many of its events were unknown to the vocabulary."""

    ids: list[int]
    unknown: int


class Vocabulary:
    """Event token <-> id. Id 0 is UNK, 1 is BOS (left padding, never a target)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = [UNK, BOS, *tokens]
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, tunes: Iterable[Sequence[Event]], min_count: int = 1) -> Vocabulary:
        """From train tunes: events seen at least `min_count` times, most frequent first
        (ties by spelling, so the same tunes always give the same ids)."""
        counts = Counter(event_token(e) for tune in tunes for e in tune)
        kept = [t for t, c in counts.items() if c >= min_count]
        return cls(sorted(kept, key=lambda t: (-counts[t], t)))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, events: Sequence[Event]) -> Encoded:
        ids = [self.index.get(event_token(e), UNK_ID) for e in events]
        return Encoded(ids, sum(1 for i in ids if i == UNK_ID))

    def encode_strict(self, events: Sequence[Event]) -> list[int]:
        """Ids of a primer: an event the model never saw is an error, not a silent UNK."""
        out = []
        for event in events:
            token = event_token(event)
            if token not in self.index:
                raise UserError(
                    f"primer event {token} is not in the model's vocabulary ({len(self) - 2} "
                    "events seen in training); use a pitch and duration the corpus has"
                )
            out.append(self.index[token])
        return out

    def event(self, token_id: int) -> Event:
        if token_id in (UNK_ID, BOS_ID):
            raise ValueError(f"token id {token_id} is {self.tokens[token_id]}, not an event")
        return parse_event(self.tokens[token_id])

    def to_json(self) -> str:
        return json.dumps({"tokens": self.tokens[2:]}, indent=0)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        return cls(json.loads(text)["tokens"])
