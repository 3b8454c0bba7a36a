"""One HTML page per dream run: each dream beside its start note and beside the real
validation notes that most activate the same class or channel, each with a player.

Pictures and sounds are embedded as data URIs: MLflow's artifact viewer shows an HTML
artifact from a `blob:` URL inside a sandboxed iframe, where relative links resolve against
nothing; embedded, the page works there, downloaded, and from disk alike. Every player is a
loudness-matched MP3 copy (`loudness.match_loudness`, the exact WAVs stay artifacts), so what
differs between two players is the sound, not its level. Thumbnails share the run's one
colour scale; a dream that did not work shows its flag, and no picture where the picture
would pass for content (no gradient, maximised by silence).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from nsynth_research.core.files import atomic_write_text
from nsynth_research.dream.loudness import match_loudness
from nsynth_research.instruments.config import SAMPLE_RATE

STYLE = """
body { font-family: sans-serif; margin: 1.2em; max-width: 1500px; }
.row { display: flex; align-items: flex-start; gap: 0.6em; margin: 0.4em 0; }
.cells { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0.6em; }
.label { flex: 0 0 9em; font-size: 0.85em; color: #444; padding-top: 2em; }
h3.family { margin: 1.4em 0 0.2em 0; border-top: 2px solid #888; padding-top: 0.4em; }
.cell { width: 232px; font-size: 0.78em; border: 1px solid #ddd; padding: 3px; }
.cell img { width: 224px; height: 112px; display: block; }
.cell audio { width: 224px; height: 28px; }
.pair { display: flex; gap: 2px; align-items: center; }
.arrow { font-size: 1.6em; color: #888; }
.flag { color: #a00000; font-weight: bold; }
.remark { color: #8a5a00; }
.hidden { width: 224px; height: 112px; background: #ccc; color: #a00000; display: flex;
          align-items: center; justify-content: center; text-align: center; }
.real { background: #f4f8ff; }
pre { background: #f6f6f6; padding: 0.5em; }
"""


@dataclass
class Cell:
    """One tile of the page: a picture, a player and a few lines about them."""

    title: str
    thumb: bytes | None
    audio: np.ndarray | None
    lines: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    real: bool = False
    #: Shown in place of the picture when `thumb` is None.
    hidden_because: str = ""
    #: The dream's artifact key (or the note's name), as the cell's `data-key`.
    key: str = ""


@dataclass
class Row:
    label: str
    cells: list[Cell | tuple[Cell, Cell]]
    #: A heading between rows (no cells).
    heading: bool = False


@dataclass
class Section:
    heading: str
    intro: str = ""
    rows: list[Row] = field(default_factory=list)


def _uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _player(audio: np.ndarray, target: float) -> tuple[str, str]:
    matched = match_loudness(audio, target)
    buffer = io.BytesIO()
    sf.write(buffer, matched.audio, SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III")
    if not np.isfinite(matched.loudness):
        note = "silent (below the -70 LUFS gate)"
    elif matched.peak_limited:
        note = f"played at {matched.loudness:.0f} LUFS (peak-limited, {matched.gain_db:+.0f} dB)"
    else:
        note = f"played at {matched.loudness:.0f} LUFS ({matched.gain_db:+.0f} dB)"
    return _uri(buffer.getvalue(), "audio/mpeg"), note


def _cell(c: Cell, target: float) -> str:
    e = html.escape
    if c.thumb is not None:
        picture = f'<img src="{_uri(c.thumb, "image/png")}" alt="{e(c.title)}">'
    else:
        picture = f'<div class="hidden">no picture:<br>{e(c.hidden_because)}</div>'
    parts = [
        f'<div class="cell{" real" if c.real else ""}" data-key="{e(c.key)}">',
        picture,
        f"<b>{e(c.title)}</b>",
    ]
    if c.audio is not None:
        src, note = _player(c.audio, target)
        parts.append(f'<br><audio controls preload="none" src="{src}"></audio><br>{e(note)}')
    parts += [f"<br>{line}" for line in c.lines]
    parts += [f'<br><span class="flag">FAILED: {e(f)}</span>' for f in c.flags]
    parts += [f'<br><span class="remark">{e(r)}</span>' for r in c.remarks]
    return "".join(parts) + "</div>"


def _row(row: Row, target: float) -> str:
    cells = []
    for item in row.cells:
        if isinstance(item, tuple):
            start, dream = item
            cells.append(
                f'<div class="pair">{_cell(start, target)}<span class="arrow">&rarr;</span>'
                f"{_cell(dream, target)}</div>"
            )
        else:
            cells.append(_cell(item, target))
    if row.heading:
        return f'<h3 class="family">{html.escape(row.label)}</h3>'
    return (
        f'<div class="row"><div class="label">{html.escape(row.label)}</div>'
        f'<div class="cells">{"".join(cells)}</div></div>'
    )


def _figure(caption: str, png: bytes) -> str:
    return (
        f"<h3>{html.escape(caption)}</h3>"
        f'<img style="max-width:100%" src="{_uri(png, "image/png")}" alt="{html.escape(caption)}">'
    )


def write_page(
    out: Path,
    *,
    title: str,
    intro: str,
    figures: Sequence[tuple[str, bytes]],
    sections: Sequence[Section],
    loudness: float,
    appendix: Sequence[tuple[str, bytes]] = (),
) -> Path:
    """`out/index.html`; `intro` is trusted HTML, `figures` (caption, PNG) come before the
    sections and `appendix` figures after them."""
    body = [f"<h1>{html.escape(title)}</h1>", intro]
    body.extend(_figure(c, png) for c, png in figures)
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.intro:
            body.append(f"<p>{section.intro}</p>")
        body.extend(_row(r, loudness) for r in section.rows)
    if appendix:
        body.append("<h2>Weights</h2>")
        body.extend(_figure(c, png) for c, png in appendix)
    page = out / "index.html"
    atomic_write_text(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n",
    )
    return page
