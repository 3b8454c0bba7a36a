"""Where class dreams start: seeded faint noise, and real notes of *other* families.

A dream from a real note asks what must change for the model to hear another family, which
only means something when the model heard the note correctly to begin with: start notes are
picked among validation notes the model classifies as their own family, most confident
first, each used once. Where none is left, a misclassified or reused note is taken and the
dream carries a flag saying so. The families to start from rotate with the seed, so the seeds
of one target start from different families.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nsynth_research.dream.examples import Pool
from nsynth_research.instruments.families import FAMILIES, FAMILY_INDEX


@dataclass
class StartNote:
    """One real start note (an index into the pool) and what is wrong with it, if anything."""

    index: int
    flags: list[str] = field(default_factory=list)


def pick_start_notes(
    pool: Pool, families: tuple[str, ...], seeds: int
) -> dict[tuple[str, int], StartNote]:
    """(target family, seed) -> start note; distinct while the pool allows."""
    truth = np.array([n.family for n in pool.notes])
    predicted = pool.predicted
    confidence = pool.probabilities[np.arange(len(truth)), truth]
    by_confidence = [int(i) for i in np.argsort(-confidence, kind="stable")]
    used: set[int] = set()
    out: dict[tuple[str, int], StartNote] = {}
    # Seed-major: every target gets a first start before any gets a second.
    for seed in range(seeds):
        for name in families:
            target = FAMILY_INDEX[name]
            rank = {(target + 1 + seed + k) % len(FAMILIES): k for k in range(len(FAMILIES))}
            rank.pop(target)
            other = [i for i in by_confidence if truth[i] != target]
            other.sort(key=lambda i: rank[int(truth[i])])  # stable: confidence within a family
            fresh = [i for i in other if i not in used]
            correct = [i for i in fresh if predicted[i] == truth[i]]
            if correct:
                pick = StartNote(correct[0])
            elif fresh:
                # Rather one the model hears as a third family than as the target itself.
                fresh.sort(key=lambda i: predicted[i] == target)
                heard = FAMILIES[int(predicted[fresh[0]])]
                pick = StartNote(fresh[0], [f"start note misclassified (heard as {heard})"])
            elif other:
                pick = StartNote(other[0], ["start note reused (too few validation notes)"])
            else:
                continue  # the pool holds no note of another family
            used.add(pick.index)
            out[(name, seed)] = pick
    return out


def deepdream_note(pool: Pool, family: str) -> int:
    """The note a DeepDream amplifies: the one most confidently and correctly classified as
    `family`, else the most confident of any family."""
    truth = np.array([n.family for n in pool.notes])
    confidence = pool.probabilities[np.arange(len(truth)), truth]
    correct = (pool.predicted == truth) & (truth == FAMILY_INDEX[family])
    if correct.any():
        return int(np.flatnonzero(correct)[np.argmax(confidence[correct])])
    return int(np.argmax(confidence))


def noise_starts(
    rng: np.random.Generator, count: int, shape: tuple[int, int], std: float
) -> np.ndarray:
    """`count` faint noises around the train mean (0 in normalised units)."""
    return std * rng.standard_normal((count, *shape)).astype(np.float32)
