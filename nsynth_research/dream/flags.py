"""Saying when a dream did not work, so no failed climb is shown as if it were content.

Three failures look like content in a picture and are caught here:
- no gradient: the objective never moved (a channel whose ReLU is off for every input the
  climb tried, or a saturated score); the picture is only the start noise after the
  regularisers smoothed it;
- maximised by silence: the optimum is (close to) no sound at all, e.g. a channel that fires
  most where the input is quietest; drawn on its own colour scale this is a bright pattern
  of values near zero;
- target not reached: the class climb raised its score but another family still wins (the
  flag names it), or a channel or layer score did not rise.
Flags are plain sentences: the page shows them instead of, or over, the picture, and the run
logs them in summary.json and as counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nsynth_research.dream.ascent import Bounds
from nsynth_research.dream.dreams import Dream
from nsynth_research.instruments.families import FAMILIES

NO_GRADIENT = "no gradient"
SILENCE = "maximised by silence"
NOT_REACHED = "target not reached"
DID_NOT_RISE = "score did not rise"
#: Flags whose picture would be mistaken for content: the page shows no picture for them.
NO_PICTURE = (NO_GRADIENT, SILENCE)


def level_db(x: np.ndarray, bounds: Bounds) -> float:
    """Mean frame energy of a normalised input relative to the loudest real frame (dB)."""
    if bounds.frame_energy is None:
        return 0.0
    mean = float(np.mean(bounds.frame_energies(x)))
    return 10 * float(np.log10(max(mean, 1e-300) / bounds.frame_energy))


def _moved(score: np.ndarray) -> bool:
    score = np.asarray(score, np.float64)
    return bool(np.ptp(score) > 1e-6 * (1.0 + np.max(np.abs(score))))


def diagnose(dreams: Sequence[Dream], bounds: Bounds, silence_db: float) -> None:
    """Set each dream's level and append its failure flags (in place)."""
    for d in dreams:
        d.extra["level_db"] = level_db(d.x, bounds)
        if d.kind not in ("class", "channel", "deepdream"):
            continue
        score = d.curves.get("score")
        if score is not None and not _moved(score):
            what = "the channel stayed 0 (off)" if d.kind == "channel" else "the score never moved"
            d.flags.append(f"{NO_GRADIENT}: {what} for every input of its {len(score)} steps")
        if d.extra["level_db"] < silence_db:
            below = -d.extra["level_db"]
            d.flags.append(
                f"{SILENCE}: its mean frame is {below:.0f} dB below the loudest real one"
            )
        if d.kind == "class" and d.probs_after is not None and not d.reached:
            rival = int(np.argmax(d.probs_after))
            d.flags.append(
                f"{NOT_REACHED}: {FAMILIES[rival]} wins (p {d.probs_after[rival]:.2f}, "
                f"p({FAMILIES[d.target or 0]}) {d.probs_after[d.target or 0]:.2f})"
            )
        elif d.kind != "class" and score is not None and _moved(score) and score[-1] <= score[0]:
            d.flags.append(f"{DID_NOT_RISE}: {score[0]:.3g} -> {score[-1]:.3g}")


def is_failure(flag: str) -> bool:
    """A flag set by `diagnose` (start-note remarks are no failure of the dream)."""
    return flag.startswith((NO_GRADIENT, SILENCE, NOT_REACHED, DID_NOT_RISE))


def failed(d: Dream) -> bool:
    return any(map(is_failure, d.flags))


def hide_picture(d: Dream) -> bool:
    return any(f.startswith(NO_PICTURE) for f in d.flags)
