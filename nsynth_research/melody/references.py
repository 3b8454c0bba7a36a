"""What generated melodies are judged against: real continuations of held-out tunes, and the
n-gram baseline sampled from the same primers with the same options.

A tune is cut the way generation is asked to work: its anacrusis and first full bar are the
primer; the next bars (the primer's last bar completed, then `bars` whole bars) are its real
continuation. Real excerpts come from tunes the network never trained on, each in its own key
and metre; the statistics are key-relative, so tunes in different keys pool.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction

from nsynth_research.melody.corpus import Tune
from nsynth_research.melody.metre import Metre, continuation, parse_metre
from nsynth_research.melody.ngram import NGramModel
from nsynth_research.melody.primer import Primer
from nsynth_research.melody.stats import Melody
from nsynth_research.melody.tokens import REST, Event, Vocabulary

DEFAULT_METRE = Metre(4, 4)
_NGRAM_METRIC = re.compile(r"^val_perplexity_(\d+)gram$")


def common_metre(tunes: Sequence[Tune]) -> Metre:
    """The time signature most tunes have (4/4 when none has one)."""
    counts = Counter(t.metre for t in tunes if t.metre)
    return parse_metre(counts.most_common(1)[0][0]) if counts else DEFAULT_METRE


def tune_primer(tune: Tune) -> Primer:
    """A tune's anacrusis and first full bar (cut before a note tied over that barline)."""
    metre = tune.time_signature or DEFAULT_METRE
    end = tune.pickup + metre.bar
    events: list[Event] = []
    t = Fraction(0)
    for e in tune.events:
        if t + e.duration > end:
            break
        events.append(e)
        t += e.duration
    source = f"anacrusis and first bar of tune {tune.id} ({tune.title})"
    return Primer(tuple(events), source, metre, tune.key, tune.pickup)


def take(events: Sequence[Event], start: Fraction, length: Fraction) -> tuple[Event, ...]:
    """The events sounding in [start, start + length) quarters, the last one cut at the end."""
    out: list[Event] = []
    t = Fraction(0)
    for e in events:
        end = t + e.duration
        if end > start and t < start + length:
            begin, stop = max(t, start), min(end, start + length)
            out.append(Event(e.pitch, stop - begin))
        t = end
    return tuple(out)


def real_continuation(tune: Tune, primer: Primer, bars: int) -> Melody | None:
    """What the tune really plays after `primer` (its own start) for the generated length;
    None when the tune has no key or no notes there."""
    metre = primer.metre or DEFAULT_METRE
    if tune.key is None:
        return None
    offset, length = continuation(metre.bar, primer.pickup, primer.length, bars)
    events = take(tune.events, primer.length, length)
    if not any(e.pitch != REST for e in events):
        return None
    return Melody(events, tune.key, metre.bar, offset)


def real_excerpts(tunes: Sequence[Tune], bars: int) -> list[Melody]:
    """The real continuation of each tune after its own first bar (tunes with a metre)."""
    out = []
    for tune in tunes:
        if tune.metre is None:
            continue
        found = real_continuation(tune, tune_primer(tune), bars)
        if found is not None:
            out.append(found)
    return out


def best_ngram_order(metrics: Mapping[str, float], default: int = 3) -> int:
    """The n-gram order with the lowest validation perplexity a training run logged."""
    found = {int(m[1]): v for k, v in metrics.items() if (m := _NGRAM_METRIC.match(k))}
    return min(found, key=found.__getitem__) if found else default


def ngram_model(train: Sequence[Tune], vocab: Vocabulary, order: int) -> NGramModel:
    return NGramModel(order, len(vocab)).fit([vocab.encode(t.events).ids for t in train])
