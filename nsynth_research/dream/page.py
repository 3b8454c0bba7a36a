"""One HTML page per dream run: every spectrogram beside an audio player, with its numbers.

The pictures and sounds are embedded as data URIs rather than linked. MLflow's artifact
viewer shows an HTML artifact from a `blob:` URL inside a sandboxed iframe, where a relative
link resolves against nothing and every image and player would be broken; embedded, the page
works there, from a downloaded copy, and straight from disk alike. Audio is embedded as
MP3 to keep the page a few MB; the exact float WAVs sit beside it as artifacts.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from nsynth_research.dream.dreams import Dream
from nsynth_research.instruments.families import FAMILIES

SECTIONS = (
    ("class", "Class dreams: inputs that maximise each family's logit"),
    ("source", "Start notes of the class dreams (through Griffin-Lim, for a fair comparison)"),
    ("deepdream-source", "DeepDream: the note before"),
    ("deepdream", "DeepDream: the note after"),
    ("channel", "Channels: inputs that maximise one channel of a conv block"),
)
STYLE = """
body { font-family: sans-serif; margin: 1.5em; max-width: 1200px; }
.item { display: flex; align-items: center; gap: 1em; margin: 0.6em 0;
        border-bottom: 1px solid #ddd; padding-bottom: 0.6em; }
.item img { width: 480px; }
.meta { font-size: 0.9em; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border: 1px solid #ccc; }
"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _listening_copy(wav: Path) -> bytes:
    """The WAV as MP3 for the page (a tenth of the size; the exact float WAV stays an
    artifact), scaled down only if its peak exceeds full scale, which MP3 would clip."""
    audio, rate = sf.read(wav, dtype="float32")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="MP3", subtype="MPEG_LAYER_III")
    return buffer.getvalue()


def _numbers(d: Dream) -> str:
    parts = []
    if d.target is not None and d.prob_before is not None and d.prob_after is not None:
        parts.append(
            f"p({FAMILIES[d.target]}) {d.prob_before:.3f} &rarr; {d.prob_after:.3f} (input space)"
        )
    if "roundtrip_top" in d.extra:
        heard = f"WAV heard as <b>{html.escape(str(d.extra['roundtrip_top']))}</b>"
        if "roundtrip_prob" in d.extra:
            heard += f", p({FAMILIES[d.target or 0]}) {float(d.extra['roundtrip_prob']):.3f}"
        parts.append(heard)
    if "peak" in d.extra:
        parts.append(f"peak {float(d.extra['peak']):.2f}")
    return "<br>".join(parts)


def write_page(
    out: Path, dreams: Sequence[Dream], *, title: str, intro: str, figures: Sequence[str]
) -> Path:
    """`out/index.html` from the PNG and WAV of each dream already written under `out`;
    `figures` are further PNGs (grids, kernels) shown at the top."""
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{intro}</p>"]
    for rel in figures:
        path = out / rel
        if path.is_file():
            body.append(
                f'<h3>{html.escape(rel)}</h3><img style="max-width:100%" '
                f'src="{_data_uri(path.read_bytes(), "image/png")}" alt="{html.escape(rel)}">'
            )
    for kind, heading in SECTIONS:
        items = [d for d in dreams if d.kind == kind]
        if not items:
            continue
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for d in items:
            png, wav = out / f"{d.key}.png", out / f"{d.key}.wav"
            sound = _data_uri(_listening_copy(wav), "audio/mpeg")
            body.append(
                '<div class="item">'
                f'<img src="{_data_uri(png.read_bytes(), "image/png")}" '
                f'alt="{html.escape(d.title)}">'
                f'<div class="meta"><b>{html.escape(d.title)}</b><br>'
                f'<audio controls preload="none" src="{sound}"></audio>'
                f"<br>{_numbers(d)}</div></div>"
            )
    page = out / "index.html"
    page.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    return page
