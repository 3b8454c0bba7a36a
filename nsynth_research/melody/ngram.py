"""n-gram baselines: the numbers an LSTM has to beat to be worth its training time.

Interpolated Witten-Bell smoothing: the probability of an event after a context mixes the
context's counts with the next-shorter context's estimate, weighted by how many different
events followed the context (a context that was followed by many events leaves more room
for unseen ones). The base is an add-one unigram over the vocabulary, so every event has a
probability and perplexity is always finite. Contexts are BOS-padded exactly as the
network's windows are, so both are scored on the same events.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from nsynth_research.melody.tokens import BOS_ID


class NGramModel:
    """Interpolated Witten-Bell n-gram model over token ids (n = 1 is add-one unigram)."""

    def __init__(self, order: int, vocab_size: int) -> None:
        if order < 1:
            raise ValueError("an n-gram model needs order >= 1")
        self.order, self.vocab_size = order, vocab_size
        #: context tuple (length 1..order-1) -> Counter of next ids
        self.follow: dict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
        self.unigram: Counter[int] = Counter()
        self.total = 0

    def fit(self, tunes: Sequence[Sequence[int]]) -> NGramModel:
        pad = [BOS_ID] * (self.order - 1)
        for ids in tunes:
            seq = pad + list(ids)
            for i in range(len(pad), len(seq)):
                target = seq[i]
                self.unigram[target] += 1
                self.total += 1
                for k in range(1, self.order):
                    self.follow[tuple(seq[i - k : i])][target] += 1
        return self

    def prob(self, context: Sequence[int], target: int) -> float:
        """P(target | last order-1 ids of context)."""
        # Targets are events, never BOS: the add-one mass goes to the other ids.
        p = (self.unigram[target] + 1) / (self.total + self.vocab_size - 1)
        ctx = list(context)[-(self.order - 1) :] if self.order > 1 else []
        for k in range(1, len(ctx) + 1):
            counts = self.follow.get(tuple(ctx[-k:]))
            if not counts:
                break  # a longer context unseen too: keep the shorter estimate
            n, types = sum(counts.values()), len(counts)
            p = (counts[target] + types * p) / (n + types)
        return p

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """P(every id | last order-1 ids of context) at once (BOS 0): `prob` for all targets."""
        p = np.ones(self.vocab_size)
        for target, count in self.unigram.items():
            p[target] += count
        p /= self.total + self.vocab_size - 1
        p[BOS_ID] = 0.0
        ctx = list(context)[-(self.order - 1) :] if self.order > 1 else []
        for k in range(1, len(ctx) + 1):
            counts = self.follow.get(tuple(ctx[-k:]))
            if not counts:
                break
            seen = np.zeros(self.vocab_size)
            seen[list(counts)] = list(counts.values())
            n, types = seen.sum(), len(counts)
            p = (seen + types * p) / (n + types)
        return p

    def step(self, windows: np.ndarray) -> np.ndarray:
        """Log-probabilities of the next id after each window (a sampler's `Step`)."""
        with np.errstate(divide="ignore"):
            return np.log(np.stack([self.distribution(w) for w in windows]))

    def tune_nll(self, ids: Sequence[int]) -> np.ndarray:
        """Negative log-probability (nats) of each event of one tune, BOS-padded."""
        seq = [BOS_ID] * max(self.order - 1, 0) + list(ids)
        start = len(seq) - len(ids)
        return np.array([-math.log(self.prob(seq[:i], seq[i])) for i in range(start, len(seq))])


def perplexity(nll_per_tune: Sequence[np.ndarray]) -> float:
    """exp(mean NLL over all events of all tunes)."""
    total = sum(float(a.sum()) for a in nll_per_tune)
    count = sum(len(a) for a in nll_per_tune)
    return math.exp(total / count)
