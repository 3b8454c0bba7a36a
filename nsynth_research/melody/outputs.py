"""The files of one generate run, all in a folder of its own: per melody a MIDI file (metre,
key and anacrusis declared) and, for those on the page, a WAV; the primer alone as MIDI and as
text; the distributions figure; every event and statistic as JSON; and the HTML page.

The folder is created, never reused: a second run never overwrites a first one's files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nsynth_research.core.errors import UserError
from nsynth_research.core.files import atomic_save, atomic_write_bytes, atomic_write_text
from nsynth_research.melody.page import PageItem, page_html
from nsynth_research.melody.primer import Framing, Primer
from nsynth_research.melody.render import (
    audio_bytes,
    figure_png,
    piano_roll,
    render_wav,
    to_midi,
)
from nsynth_research.melody.report import Comparison, distributions_figure, table
from nsynth_research.melody.stats import Melody, melody_stats
from nsynth_research.melody.tokens import REST, event_token


@dataclass(frozen=True)
class Generated:
    """One continuation (or the real one) with how it was made."""

    name: str
    #: The set it is compared in: `LSTM sample`, `LSTM greedy`, `3-gram sample`, ...
    group: str
    how: str
    melody: Melody
    colour: str
    #: Rendered to audio and shown on the page (the n-gram baseline is measured only).
    audio: bool = True

    @property
    def slug(self) -> str:
        return re.sub(
            r"[^a-z0-9]+", "_", re.sub(r"(\d+)$", lambda m: f"{int(m[1]):02d}", self.name.lower())
        ).strip("_")


def _tokens(events) -> str:
    return " ".join(event_token(e) for e in events)


def write_outputs(
    folder: Path,
    *,
    primer: Primer,
    framing: Framing,
    melodies: Sequence[Generated],
    comparison: Comparison,
    reference: Sequence[Melody],
    facts: Sequence[tuple[str, str]],
    title: str,
) -> list[Path]:
    """Write every file of the run into `folder` (which must not exist yet)."""
    try:
        folder.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UserError(f"{folder} exists; generated outputs are never overwritten") from None
    files: list[Path] = []

    def write(name: str, data: bytes | str) -> None:
        path = folder / name
        if isinstance(data, str):
            atomic_write_text(path, data)
        else:
            atomic_write_bytes(path, data)
        files.append(path)

    head = list(primer.events)
    metre, key, pickup = framing.metre, framing.key, framing.pickup
    pitches = [e.pitch for m in melodies for e in (*head, *m.melody.events) if e.pitch != REST]
    span = (min(pitches), max(pitches))
    atomic_save(folder / "primer.mid", to_midi(head, metre, key, pickup).write)
    files.append(folder / "primer.mid")
    write("primer.txt", f"{primer.notes_text(limit=10_000)}\n")
    items = []
    for m in melodies:
        events = [*head, *m.melody.events]
        path = folder / f"{m.slug}.mid"
        atomic_save(path, to_midi(events, metre, key, pickup).write)
        files.append(path)
        if not m.audio:
            continue
        audio = render_wav(events)
        write(f"{m.slug}.wav", audio_bytes(audio))
        roll = piano_roll(
            head,
            m.melody.events,
            bar=metre.bar,
            pickup=pickup,
            title=f"{m.name}: {m.how}",
            colour=m.colour,
            pitch_range=span,
        )
        items.append(
            PageItem(
                m.name,
                m.how,
                figure_png(roll),
                audio_bytes(audio, "OGG"),
                melody_stats(m.melody),
                _tokens(m.melody.events),
            )
        )
    groups: dict[str, list[Melody]] = {}
    for m in melodies:
        groups.setdefault(m.group, []).append(m.melody)
    caption = (
        f"Computed on the continuations of one primer ({primer.source}) in {metre.ratio}, "
        f"{key.name}; grey: real continuations of {len(reference)} validation tunes."
    )
    fig_png = figure_png(distributions_figure(groups, reference, caption), dpi=90)
    write("statistics.png", fig_png)
    headers, rows = table(comparison)
    write(
        "melodies.json",
        json.dumps(
            {
                "primer": _tokens(head),
                "primer_source": primer.source,
                "metre": metre.ratio,
                "key": key.name,
                "pickup": str(pickup),
                "melodies": [
                    {
                        "name": m.name,
                        "group": m.group,
                        "how": m.how,
                        "events": _tokens(m.melody.events),
                        "statistics": melody_stats(m.melody),
                        "file": f"{m.slug}.mid",
                    }
                    for m in melodies
                ],
                "comparison": comparison.as_json(),
                "table": {"headers": headers, "rows": rows},
            },
            indent=1,
            default=str,
        ),
    )
    write(
        "generate.html",
        page_html(
            title=title,
            facts=facts,
            items=items,
            figure_png=fig_png,
            figure_caption=caption,
            table=(headers, rows),
            table_caption=(
                "One row per set of melodies (TV: total-variation distance of the set's pooled "
                "histogram to the held-out real tunes': 0 same, 1 disjoint), then sets of as "
                "many real excerpts drawn from held-out tunes. Flags: statistics outside those "
                "real sets' central 95% range (a distance: above it); real sets' own flag "
                "counts are in the last rows, so more flags than theirs means unlike real tunes."
            ),
        ),
    )
    return files
