"""Integrated loudness (ITU-R BS.1770-4, LUFS) and loudness-matched listening copies.

Players that are compared must play equally loud, or the louder one sounds "better": a
peak-normalised dream of dense noise is many dB louder than a peak-normalised decaying note.
BS.1770 is the broadcast standard for that match: K-weighting (a high shelf near 1.5 kHz and
a high pass near 38 Hz, from the analogue prototypes so any sample rate works), mean square
over 400 ms blocks with 75 % overlap, an absolute gate at -70 LUFS and a relative gate 10 LU
below the ungated level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from nsynth_research.instruments.config import SAMPLE_RATE

#: Below this a signal has no measurable loudness (the standard's absolute gate).
ABSOLUTE_GATE = -70.0


def _biquad(kind: str, gain_db: float, q: float, fc: float, rate: int) -> tuple:
    a = 10 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * fc / rate
    alpha = np.sin(w0) / (2.0 * q)
    cos = np.cos(w0)
    if kind == "high_shelf":
        root = 2 * np.sqrt(a) * alpha
        b = [
            a * ((a + 1) + (a - 1) * cos + root),
            -2 * a * ((a - 1) + (a + 1) * cos),
            a * ((a + 1) + (a - 1) * cos - root),
        ]
        den = [
            (a + 1) - (a - 1) * cos + root,
            2 * ((a - 1) - (a + 1) * cos),
            (a + 1) - (a - 1) * cos - root,
        ]
    else:  # high pass
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        den = [1 + alpha, -2 * cos, 1 - alpha]
    return np.array(b) / den[0], np.array(den) / den[0]


def k_weighted(audio: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The K-weighted signal BS.1770 measures."""
    out = np.asarray(audio, np.float64)
    for kind, gain_db, q, fc in (
        ("high_shelf", 4.0, 1 / np.sqrt(2), 1500.0),
        ("high_pass", 0.0, 0.5, 38.0),
    ):
        b, a = _biquad(kind, gain_db, q, fc, rate)
        out = lfilter(b, a, out)
    return out


def integrated_loudness(audio: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Gated loudness in LUFS of a mono signal; -inf for silence (nothing above the gate)."""
    weighted = k_weighted(audio, rate)
    block, step = int(0.4 * rate), int(0.1 * rate)
    if weighted.size < block:
        return float("-inf")
    starts = range(0, weighted.size - block + 1, step)
    power = np.array([np.mean(weighted[s : s + block] ** 2) for s in starts])
    with np.errstate(divide="ignore"):
        level = -0.691 + 10 * np.log10(power)
    kept = power[level > ABSOLUTE_GATE]
    if kept.size == 0:
        return float("-inf")
    relative = -0.691 + 10 * np.log10(kept.mean()) - 10.0
    kept = power[(level > ABSOLUTE_GATE) & (level > relative)]
    return float(-0.691 + 10 * np.log10(kept.mean()))


@dataclass(frozen=True)
class Matched:
    """A listening copy: the signal, the gain applied (dB), and its loudness before/after."""

    audio: np.ndarray
    gain_db: float
    loudness: float
    #: The copy is quieter than the target because its peak would otherwise pass 1.
    peak_limited: bool


def match_loudness(audio: np.ndarray, target: float, max_peak: float = 0.99) -> Matched:
    """`audio` at `target` LUFS, or as close as its peak allows (never over `max_peak`);
    silence is left as it is."""
    loud = integrated_loudness(audio)
    if not np.isfinite(loud):
        return Matched(np.asarray(audio, np.float32), 0.0, loud, False)
    gain_db = target - loud
    peak = float(np.max(np.abs(audio)))
    limited = peak * 10 ** (gain_db / 20) > max_peak
    if limited:
        gain_db = 20 * np.log10(max_peak / peak)
    out = (np.asarray(audio, np.float64) * 10 ** (gain_db / 20)).astype(np.float32)
    return Matched(out, float(gain_db), loud + gain_db, bool(limited))
