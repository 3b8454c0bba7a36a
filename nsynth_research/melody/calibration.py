"""What the tune's metre and key say about the next event, matched to the corpus's rates.

The Char-RNN reads the last few events, not barlines or key signatures. Once the primer has
left its window it knows neither where the barline is nor which key the tune is in, so,
trained on tunes in every key, it drifts into whichever key the last few notes suggest and
ties notes over barlines far more often than the corpus does.

Both facts are known when generating. At each step the sampler therefore rescales the
network's distribution so that (a) the events that would cross the next barline from this
position in the bar get the probability with which train tunes of the same time signature
cross it from there (anacrusis respected), and (b) notes outside the key signature get the
probability with which train tunes leave theirs. The rescaling is the smallest change that
meets each rate (the I-projection: members of a class are scaled by one factor, the others
by another), so the network's preferences inside each class are untouched. Rates are
add-one smoothed towards the overall rate, so a position seen rarely in train tunes is
not pinned to 0 or 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import lcm

import numpy as np

from nsynth_research.melody.corpus import Tune
from nsynth_research.melody.metre import Key, Metre, crosses_barline, positions
from nsynth_research.melody.sampling import Constraint
from nsynth_research.melody.tokens import BOS_ID, REST, UNK_ID, Event, Vocabulary

#: The kinds of calibration there are.
KINDS = ("metre", "key")


def _events(vocab: Vocabulary) -> list[Event | None]:
    return [None if i in (UNK_ID, BOS_ID) else vocab.event(i) for i in range(len(vocab))]


@dataclass(frozen=True)
class BarlineRates:
    """Per time signature: Counter of events starting at each offset, and of those crossing
    the next barline from it."""

    starts: dict[str, Counter[Fraction]]
    crossing: dict[str, Counter[Fraction]]

    @classmethod
    def fit(cls, tunes: Sequence[Tune]) -> BarlineRates:
        starts: dict[str, Counter[Fraction]] = {}
        crossing: dict[str, Counter[Fraction]] = {}
        for tune in tunes:
            if tune.metre is None or tune.bar is None:
                continue
            s, c = (
                starts.setdefault(tune.metre, Counter()),
                crossing.setdefault(tune.metre, Counter()),
            )
            for event, _, offset in positions(tune.events, tune.bar, tune.pickup):
                s[offset] += 1
                c[offset] += crosses_barline(offset, event.duration, tune.bar)
        return cls(starts, crossing)

    def constraint(self, metre: Metre, vocab: Vocabulary) -> Constraint | None:
        """Per position on a grid: the events crossing the barline from there, and the rate
        at which train tunes in `metre` do; None when no train tune is in that metre."""
        starts, crossing = self.starts.get(metre.ratio), self.crossing.get(metre.ratio)
        if not starts:
            return None
        if crossing is None:  # `fit` counts both for every metre it sees
            raise ValueError(f"barline rates count starts but no crossings in {metre.ratio}")
        events, bar = _events(vocab), metre.bar
        step = Fraction(
            1,
            lcm(
                bar.denominator,
                *(e.duration.denominator for e in events if e is not None),
                *(o.denominator for o in starts),
            ),
        )
        overall = sum(crossing.values()) / sum(starts.values())
        rows = int(bar / step)
        members = np.zeros((rows, len(vocab)), dtype=bool)
        share = np.empty(rows)
        for r in range(rows):
            at = r * step
            members[r] = [e is not None and crosses_barline(at, e.duration, bar) for e in events]
            share[r] = (crossing[at] + overall) / (starts[at] + 1)
        return Constraint(members, share, step)


@dataclass(frozen=True)
class KeyRate:
    """How many events of train tunes (with a key) are notes outside their key signature."""

    outside: int
    events: int

    @classmethod
    def fit(cls, tunes: Sequence[Tune]) -> KeyRate:
        outside = events = 0
        for tune in tunes:
            if tune.key is None:
                continue
            scale = tune.key.scale
            events += len(tune.events)
            outside += sum(e.pitch != REST and e.pitch % 12 not in scale for e in tune.events)
        return cls(outside, events)

    def constraint(self, key: Key, bar: Fraction, vocab: Vocabulary) -> Constraint | None:
        if not self.events:
            return None
        scale = key.scale
        members = np.array(
            [
                [
                    e is not None and e.pitch != REST and e.pitch % 12 not in scale
                    for e in _events(vocab)
                ]
            ]
        )
        return Constraint(members, np.array([(self.outside + 1) / (self.events + 2)]), bar)


@dataclass(frozen=True)
class Calibration:
    """Both rates, counted once in the train tunes."""

    barlines: BarlineRates
    key: KeyRate

    @classmethod
    def fit(cls, tunes: Sequence[Tune]) -> Calibration:
        return cls(BarlineRates.fit(tunes), KeyRate.fit(tunes))

    def constraints(
        self, use: Sequence[str], metre: Metre, key: Key, vocab: Vocabulary
    ) -> tuple[Constraint, ...]:
        """The sampler's constraints for the kinds named in `use` (`metre`, `key`)."""
        found = []
        if "metre" in use:
            found.append(self.barlines.constraint(metre, vocab))
        if "key" in use:
            found.append(self.key.constraint(key, metre.bar, vocab))
        return tuple(c for c in found if c is not None)
