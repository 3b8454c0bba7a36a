"""Scoring a split: the network's perplexity against n-gram baselines on the same events,
with intervals from resampling tunes.

Events of one tune are not independent (a tune repeats its phrases), so intervals resample
whole tunes, not events; resampling events would give intervals far too narrow. Every model
is scored on identical resamples, so the n-gram rows can be compared with the network's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nsynth_research.core.task import SplitReport
from nsynth_research.melody.corpus import Tune
from nsynth_research.melody.ngram import NGramModel, perplexity
from nsynth_research.melody.tokens import Vocabulary
from nsynth_research.melody.training import TuneScores

NGRAM_ORDERS = (1, 2, 3, 4, 5)


def tune_bootstrap(
    values: Sequence[np.ndarray], resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of exp(mean NLL) over resampled tunes (pooled events)."""
    sums = np.array([float(v.sum()) for v in values])
    counts = np.array([len(v) for v in values], dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    stats = np.exp(sums[idx].sum(axis=1) / counts[idx].sum(axis=1))
    tail = (1 - level) / 2
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail))


def ngram_scores(
    train: Sequence[Tune], tunes: Sequence[Tune], vocab: Vocabulary
) -> dict[int, list[np.ndarray]]:
    """Per-tune NLL of each n-gram order, fitted on train tunes with the run's vocabulary."""
    train_ids = [vocab.encode(t.events).ids for t in train]
    ids = [vocab.encode(t.events).ids for t in tunes]
    out = {}
    for n in NGRAM_ORDERS:
        model = NGramModel(n, len(vocab)).fit(train_ids)
        out[n] = [model.tune_nll(t) for t in ids]
    return out


def ngram_metrics(scores: dict[int, list[np.ndarray]], split: str) -> dict[str, float]:
    return {f"{split}_perplexity_{n}gram": perplexity(nll) for n, nll in scores.items()}


def split_report(
    net: TuneScores,
    ngrams: dict[int, list[np.ndarray]],
    split: str,
    *,
    resamples: int,
    seed: int,
    who: str,
    model_uri: str,
    label: str,
) -> SplitReport:
    """Headline (network perplexity with its interval over tunes: what the study selects on)
    first, then the baselines; `label` says which tunes (e.g. "on essen test tunes")."""
    ppl = perplexity(net.nll)
    low, high = tune_bootstrap(net.nll, resamples, seed)
    events = sum(len(a) for a in net.nll)
    accuracy = float(np.concatenate(net.correct).mean())
    bits = math.log2(ppl)
    metrics: dict[str, float] = {
        f"{split}_perplexity": ppl,
        f"{split}_perplexity_ci_low": low,
        f"{split}_perplexity_ci_high": high,
        f"{split}_bits_per_event": bits,
        f"{split}_accuracy": accuracy,
        f"n_{split}_tunes": len(net.nll),
        f"n_{split}_events": events,
        f"{split}_unknown_events": net.unknown,
    }
    lines = [
        f"{split} perplexity {label}: {ppl:.3f}, 95% bootstrap interval over tunes "
        f"[{low:.3f}, {high:.3f}], {bits:.3f} bits/event, next-event accuracy {accuracy:.4f}, "
        f"{len(net.nll)} tunes, {events} events ({net.unknown} unknown), {who}"
    ]
    best_n, best_ppl = None, math.inf
    for n, nll in ngrams.items():
        p = perplexity(nll)
        lo, hi = tune_bootstrap(nll, resamples, seed)
        metrics.update(
            {
                f"{split}_perplexity_{n}gram": p,
                f"{split}_perplexity_{n}gram_ci_low": lo,
                f"{split}_perplexity_{n}gram_ci_high": hi,
            }
        )
        lines.append(
            f"{n}-gram (Witten-Bell, fitted on train tunes) perplexity {label}: {p:.3f} "
            f"[{lo:.3f}, {hi:.3f}]"
        )
        if p < best_ppl:
            best_n, best_ppl = n, p
    if best_n is not None:
        diff = [a - b for a, b in zip(net.nll, ngrams[best_n], strict=True)]
        ratio_lo, ratio_hi = tune_bootstrap(diff, resamples, seed)
        metrics[f"{split}_perplexity_ratio_vs_best_ngram"] = ppl / best_ppl
        lines.append(
            f"network / best n-gram ({best_n}-gram) perplexity ratio {ppl / best_ppl:.3f} "
            f"[{ratio_lo:.3f}, {ratio_hi:.3f}] (paired over tunes; < 1 means the network wins)"
        )
    return SplitReport(metrics=metrics, lines=lines, model_uri=model_uri)
