"""What a person primes the network with: an ABC file, a MIDI file or an event string.

Files are read with music21 and turned into events exactly as corpus tunes are, so a primer
means the same thing to the model as training data. Every problem is one UserError line: a
file that cannot be read, more than one sounding voice, or no notes at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import music21

from nsynth_research.core.errors import UserError
from nsynth_research.melody.config import TokenConfig
from nsynth_research.melody.corpus import stream_events
from nsynth_research.melody.tokens import REST, Event, parse_events

FILE_SUFFIXES = {".abc": "abc", ".mid": "midi", ".midi": "midi"}


@dataclass(frozen=True)
class Primer:
    events: tuple[Event, ...]
    #: Bar length in quarters when the primer says (a file with a meter), else None.
    bar: Fraction | None
    source: str


def _read_file(path: Path, tokens: TokenConfig) -> Primer:
    if not path.is_file():
        raise UserError(f"primer file not found: {path}")
    fmt = FILE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"primer {path}: expected an .abc, .mid or .midi file")
    try:
        parsed = music21.converter.parse(str(path), format=fmt, forceSource=True)
    except Exception as exc:  # music21 raises many types for unreadable files; all mean the same
        raise UserError(
            f"primer {path} could not be read as {fmt} ({type(exc).__name__})"
        ) from None
    if isinstance(parsed, music21.stream.Opus):
        scores = list(parsed.scores)
        if not scores:
            raise UserError(f"primer {path} holds no tune")
        parsed = scores[0]  # an ABC file of several tunes primes with its first
    events, _, bar = stream_events(parsed, tokens)
    return Primer(tuple(events), bar, str(path))


def read_primer(primer: str, tokens: TokenConfig) -> Primer:
    """A file path (.abc/.mid/.midi) or an event string such as `C4/1 E4/1 G4/2`."""
    text = primer.strip()
    if not text:
        raise UserError("the primer is empty; give an .abc/.mid file or events like 'C4/1 E4/1'")
    path = Path(text)
    if path.suffix.lower() in FILE_SUFFIXES or path.is_file():
        found = _read_file(path, tokens)
    else:
        found = Primer(tuple(parse_events(text)), None, "event string")
    if not any(e.pitch != REST for e in found.events):
        raise UserError(f"primer ({found.source}) has no notes")
    return found
