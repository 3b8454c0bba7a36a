"""Deterministic subsets of a split: a few notes of every family for quick runs, or a cap per
instrument for a study that searches on a subsample and fits its choice on everything.

No randomness: the same files give the same subset in every process, so a sweep worker, the
statistics cache and a reproduced run all see the notes the study saw.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from nsynth_research.instruments.data.notes import Note


def spread(notes: Sequence[Note], limit: int) -> list[Note]:
    """`limit` notes, every family kept (while limit allows), evenly spaced by note_str.

    Quotas are proportional to family size with at least one per family; within a family
    the picks are evenly spaced over its name-sorted notes, which walks across its
    instruments, pitches and velocities.
    """
    by_family: dict[int, list[Note]] = {}
    for note in sorted(notes, key=lambda n: n.note_str):
        by_family.setdefault(note.family, []).append(note)
    families = sorted(by_family, key=lambda f: (-len(by_family[f]), f))
    if limit < len(families):
        quota = {f: int(f in families[:limit]) for f in families}
    else:
        total = len(notes)
        quota = {f: max(1, limit * len(by_family[f]) // total) for f in families}
        while sum(quota.values()) > limit:
            largest = max((f for f in families if quota[f] > 1), key=lambda f: quota[f])
            quota[largest] -= 1
        while sum(quota.values()) < limit:
            # The family furthest below its proportional share gets the next pick.
            room = [f for f in families if quota[f] < len(by_family[f])]
            pick = max(room, key=lambda f: limit * len(by_family[f]) / total - quota[f])
            quota[pick] += 1
    chosen: list[Note] = []
    for family, members in by_family.items():
        q = quota[family]
        chosen.extend(members[int((i + 0.5) * len(members) / q)] for i in range(q))
    return sorted(chosen, key=lambda n: n.note_str)


def per_instrument(notes: Sequence[Note], limit: int) -> list[Note]:
    """At most `limit` notes of each instrument, spread over its pitches and velocities.

    Every instrument keeps its share (a subsample by instrument, not by note, keeps all the
    timbres a study should choose between), and within one the picks form a Latin design:
    pitch targets evenly spaced through its notes sorted by pitch, velocities taken in turn,
    each pick the nearest unchosen note. So a cap of 20 on an NSynth instrument (88 pitches x
    5 velocities) plays 20 pitches across its range, each velocity 4 times.
    """
    by_instrument: dict[str, list[Note]] = {}
    for note in notes:
        by_instrument.setdefault(note.instrument_str, []).append(note)
    chosen: list[Note] = []
    for members in by_instrument.values():
        chosen.extend(members if len(members) <= limit else _latin(members, limit))
    return sorted(chosen, key=lambda n: n.note_str)


def _latin(members: list[Note], k: int) -> list[Note]:
    velocities = sorted({n.velocity for n in members})
    pitches = sorted(n.pitch for n in members)
    # Unchosen notes per velocity, sorted by (pitch, note_str) for nearest-pitch lookups.
    free = {
        v: sorted(((n.pitch, n.note_str), n) for n in members if n.velocity == v)
        for v in velocities
    }
    out = []
    for i in range(k):
        target = pitches[int((i + 0.5) * len(pitches) / k)]
        wanted = velocities[i % len(velocities)]
        pools = [wanted] if free[wanted] else [v for v in velocities if free[v]]
        _, index, v = min((*_nearest(free[v], target), v) for v in pools)
        out.append(free[v].pop(index)[1])
    return out


def _nearest(pool: list[tuple[tuple[int, str], Note]], pitch: int) -> tuple[int, int]:
    """(distance in semitones, index) of the note in `pool` nearest `pitch`, lower first."""
    at = bisect_left(pool, (pitch, ""), key=lambda item: item[0])
    candidates = [i for i in (at - 1, at) if 0 <= i < len(pool)]
    return min((abs(pool[i][0][0] - pitch), i) for i in candidates)
