"""The HTML page of a generate run: every melody with a player and its piano roll, the
distributions figure and the statistics table beside the real-tune reference.

Pictures and audio are embedded as data URIs, so the page shows the same from the MLflow UI,
a local folder or an e-mail (relative links break inside MLflow's artifact view); audio is
embedded as Ogg Vorbis to keep a page of ten players to a few megabytes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nsynth_research.melody.report import COLUMNS, PERCENT

STYLE = """
body { font-family: sans-serif; margin: 1.5em; max-width: 1200px }
table { border-collapse: collapse; font-size: 0.85em }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right }
td:first-child, th:first-child { text-align: left }
.melody { border-top: 1px solid #ddd; padding: 0.4em 0; display: flex; gap: 1em;
          align-items: center }
.melody img { width: 62%; flex: none }
.meta { color: #555; font-size: 0.85em }
"""


@dataclass(frozen=True)
class PageItem:
    """One melody on the page."""

    name: str
    description: str
    roll_png: bytes
    audio_ogg: bytes
    stats: dict[str, float]
    tokens: str


def _uri(kind: str, data: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _format(key: str, value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        return f"{100 * value:.1f}%" if key in PERCENT else f"{value:.3g}"
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _item(item: PageItem) -> str:
    stats = ", ".join(
        f"{COLUMNS[k]} {_format(k, item.stats[k])}" for k in COLUMNS if k in item.stats
    )
    return f"""<div class="melody">
<img src="{_uri("image/png", item.roll_png)}" alt="piano roll of {html.escape(item.name)}">
<div><b>{html.escape(item.name)}</b> <span class="meta">{html.escape(item.description)}</span><br>
<audio controls preload="none" src="{_uri("audio/ogg", item.audio_ogg)}"></audio>
<p class="meta">{html.escape(stats)}</p>
<details><summary class="meta">events</summary><code>{html.escape(item.tokens)}</code></details>
</div></div>"""


def page_html(
    *,
    title: str,
    facts: Sequence[tuple[str, str]],
    items: Sequence[PageItem],
    figure_png: bytes,
    figure_caption: str,
    table: tuple[Sequence[str], Sequence[Sequence[Any]]],
    table_caption: str,
) -> str:
    """The whole page: facts of the run, the melodies, then the comparison."""
    fact_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in facts
    )
    melodies = "\n".join(_item(i) for i in items)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h2>{html.escape(title)}</h2>
<table>{fact_rows}</table>
<h3>Statistics against held-out real tunes</h3>
<p class="meta">{html.escape(table_caption)}</p>
{_table(*table)}
<img src="{_uri("image/png", figure_png)}" style="width: 100%"
 alt="{html.escape(figure_caption)}">
<h3>Melodies</h3>
{melodies}
</body></html>
"""
