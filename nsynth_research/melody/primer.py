"""What a person primes the network with (an ABC file, a MIDI file or an event string), and
the metre, key and anacrusis the continuation is written in.

Files are read with music21 and turned into events exactly as corpus tunes are, so a primer
means the same thing to the model as training data; their time signature, key and pickup bar
come with them. An event string may mark barlines with `|`: `G4/1 | C5/1 E5/1 G5/2 |` starts
with a one-beat pickup; without `|` the primer starts on a downbeat. A MIDI file that opens
with a rest shorter than a bar (how MIDI writes an anacrusis) starts with that pickup.
METER= and KEY= override what a primer says; a primer that says nothing is in the corpus's
most common metre and in the key music21 hears in its notes. Every problem is one UserError.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import music21

from nsynth_research.core.errors import UserError
from nsynth_research.melody.config import TokenConfig
from nsynth_research.melody.corpus import parse_abc, stream_events
from nsynth_research.melody.metre import Key, Metre, estimate_key, stream_meta
from nsynth_research.melody.tokens import REST, Event, event_token, parse_events

FILE_SUFFIXES = {".abc": "abc", ".mid": "midi", ".midi": "midi"}
#: Events shown of a primer in a param or a title before it is cut short.
SHOWN_EVENTS = 24


@dataclass(frozen=True)
class Primer:
    events: tuple[Event, ...]
    source: str
    metre: Metre | None = None
    key: Key | None = None
    pickup: Fraction = Fraction(0)
    #: Offsets (quarters from the first event) of the barlines an event string marks.
    barlines: tuple[Fraction, ...] = ()

    @property
    def length(self) -> Fraction:
        return sum((e.duration for e in self.events), Fraction(0))

    def notes_text(self, limit: int = SHOWN_EVENTS) -> str:
        """`C4/1 E4/1 G4/2`, cut after `limit` events with how many there are in all."""
        tokens = [event_token(e) for e in self.events]
        if len(tokens) <= limit:
            return " ".join(tokens)
        return " ".join(tokens[:limit]) + f" ... ({len(tokens)} events)"


@dataclass(frozen=True)
class Framing:
    """The metre, key and anacrusis a primer's continuation is written in, and where each
    came from (METER=/KEY=, the primer, the corpus, music21's estimate)."""

    metre: Metre
    key: Key
    pickup: Fraction
    metre_from: str
    key_from: str


def _read_file(path: Path, tokens: TokenConfig) -> Primer:
    if not path.is_file():
        raise UserError(f"primer file not found: {path}")
    fmt = FILE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"primer {path}: expected an .abc, .mid or .midi file")
    try:
        parsed = (
            parse_abc(path.read_text(errors="replace"))  # the corpus's accidental rule
            if fmt == "abc"
            else music21.converter.parse(str(path), format=fmt, forceSource=True)
        )
    except Exception as exc:  # music21 raises many types for unreadable files; all mean the same
        raise UserError(
            f"primer {path} could not be read as {fmt} ({type(exc).__name__})"
        ) from None
    if isinstance(parsed, music21.stream.Opus):
        scores = list(parsed.scores)
        if not scores:
            raise UserError(f"primer {path} holds no tune")
        parsed = scores[0]  # an ABC file of several tunes primes with its first
    events, _, _ = stream_events(parsed, tokens)
    meta = stream_meta(parsed)
    pickup = meta.pickup
    if fmt == "midi" and events and events[0].pitch == REST and meta.metre is not None:
        lead = events[0].duration
        if lead < meta.metre.bar:  # a rest before the pickup, so that MIDI bars line up
            pickup, events = (meta.metre.bar - lead) % meta.metre.bar, events[1:]
    return Primer(tuple(events), str(path), meta.metre, meta.key, pickup)


def _read_text(text: str) -> Primer:
    events: list[Event] = []
    barlines: list[Fraction] = []
    t = Fraction(0)
    for word in text.replace("|", " | ").split():
        if word == "|":
            barlines.append(t)
            continue
        events.extend(parse_events(word))
        t += events[-1].duration
    return Primer(tuple(events), "event string", barlines=tuple(barlines))


def read_primer(primer: str, tokens: TokenConfig) -> Primer:
    """A file path (.abc/.mid/.midi) or an event string such as `C4/1 E4/1 G4/2`."""
    text = primer.strip()
    if not text:
        raise UserError("the primer is empty; give an .abc/.mid file or events like 'C4/1 E4/1'")
    path = Path(text)
    if path.suffix.lower() in FILE_SUFFIXES or path.is_file():
        found = _read_file(path, tokens)
    else:
        found = _read_text(text)
    if not any(e.pitch != REST for e in found.events):
        raise UserError(f"primer ({found.source}) has no notes")
    return found


def frame(primer: Primer, *, metre: Metre | None, key: Key | None, default_metre: Metre) -> Framing:
    """Metre, key and anacrusis of the continuation: METER=/KEY= first, then what the primer
    declares, then the corpus's commonest metre and music21's estimate of the key."""
    chosen_metre, metre_from = (
        (metre, "METER=")
        if metre
        else (primer.metre, "the primer")
        if primer.metre
        else (default_metre, "the corpus's most common metre")
    )
    chosen_key, key_from = (
        (key, "KEY=")
        if key
        else (primer.key, "the primer")
        if primer.key
        else (estimate_key(primer.events), "music21's key estimate of the primer's notes")
    )
    bar, pickup = chosen_metre.bar, primer.pickup % chosen_metre.bar
    if primer.barlines:
        first = primer.barlines[0]
        off = [b for b in primer.barlines if (b - first) % bar]
        if off:
            raise UserError(
                f"primer barline after {off[0]} quarters is not a whole number of "
                f"{chosen_metre.ratio} bars after the one at {first}"
            )
        pickup = first % bar
    return Framing(chosen_metre, chosen_key, pickup, metre_from, key_from)
