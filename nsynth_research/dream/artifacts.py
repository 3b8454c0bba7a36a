"""A dream run's pictures and page: the figures logged as artifacts (grids, curves, channel
rows, kernels, on the run's one colour scale), the dreamed arrays, and `index.html`.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from nsynth_research.dream.compute import Prepared
from nsynth_research.dream.curves import curves_figure
from nsynth_research.dream.dreams import Dream
from nsynth_research.dream.figures import (
    Panel,
    Scale,
    channel_grid_figure,
    colorbar_png,
    grid_figure,
    kernel_figure,
)
from nsynth_research.dream.flags import is_failure
from nsynth_research.dream.layout import class_panels, examples, features_of, sections
from nsynth_research.dream.page import write_page
from nsynth_research.dream.report import save_arrays


def _save(fig: plt.Figure | None, path: Path) -> bytes | None:
    if fig is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path.read_bytes()


def write_artifacts(
    prep: Prepared,
    dreams: list[Dream],
    audio: dict[str, np.ndarray],
    out: Path,
    text: str,
    title: str,
) -> None:
    """Figures, arrays and the page."""
    feats = features_of(dreams, prep)
    tops = examples(prep)
    scale = Scale.of([*feats.values(), *(e.feats for top in tops.values() for e in top)])
    cfg, seeds = prep.predictor.config.features, prep.config.seeds
    source = f"model run {prep.predictor.source.removeprefix('run ')}"
    for start in ("noise", "note"):
        panels = class_panels(dreams, feats, start)
        if panels:
            fig = grid_figure(
                panels,
                cfg,
                scale,
                f"Class dreams from {start} ({source}, {prep.config.objective} objective)",
                cols=seeds * max(1, 6 // seeds),
            )
            _save(fig, out / f"class/grid_{start}.png")
    deep = [Panel(feats[d.key], d.title) for d in dreams if d.kind.startswith("deepdream")]
    fig = grid_figure(deep, cfg, scale, f"DeepDream at {prep.layer} ({source})", cols=2)
    _save(fig, out / "deepdream/before_after.png")
    rows: dict[str, list[Panel]] = {}
    for d in (d for d in dreams if d.kind == "channel"):
        flag = next((f for f in d.flags if is_failure(f)), "")
        rows.setdefault(d.extra["layer"], []).append(Panel(feats[d.key], d.title, flag))
    if rows:
        fig = channel_grid_figure(rows, cfg, scale, f"Inputs that maximise channels ({source})")
        _save(fig, out / "filters/channels.png")
    curves = [
        (
            "Target logit (solid) and strongest rival (dashed) per ascent step",
            _save(
                curves_figure(dreams, "target_logit", f"Class dream curves ({source})"),
                out / "class/curves_logit.png",
            ),
        ),
        (
            "Target probability per ascent step",
            _save(
                curves_figure(dreams, "target_prob", f"p(target) per step ({source})"),
                out / "class/curves_prob.png",
            ),
        ),
    ]
    appendix = []
    if prep.blocks:
        first = prep.predictor.model.get_layer(prep.blocks[0].conv)
        kernels = _save(
            kernel_figure(first.get_weights()[0], f"{first.name} kernels ({source})"),
            out / "filters/conv0_kernels.png",
        )
        appendix.append((f"First conv kernels ({first.name})", kernels))
    save_arrays(out, dreams)
    write_page(
        out,
        title=title,
        intro=_intro(prep, scale, text),
        figures=[(c, png) for c, png in curves if png is not None],
        sections=sections(dreams, prep, feats, audio, tops, scale),
        loudness=prep.config.page_loudness,
        appendix=[(c, png) for c, png in appendix if png is not None],
    )


def _intro(prep: Prepared, scale: Scale, text: str) -> str:
    bar = base64.b64encode(colorbar_png(scale)).decode("ascii")
    return (
        f"<p>Model {html.escape(prep.predictor.source)}: {prep.config.objective} objective, "
        f"{prep.config.seeds} seeds per family and start. Spectrograms show the dreamed input "
        "after undoing the normalisation, every one on the same colour scale "
        f'<img src="data:image/png;base64,{bar}" style="height:2.4em">. Every dream is '
        "bounded to what real audio can be: no cell louder than a full-scale signal allows, "
        "no frame louder than the loudest frame, and no input louder than the loudest note, "
        f"of the {len(prep.pool.notes)} validation notes scored. Audio is Griffin-Lim at the "
        "model's n_fft and hop; every WAV artifact is at or below full scale (a gain applied "
        "is listed), and every player is matched to "
        f"{prep.config.page_loudness:.0f} LUFS (ITU-R BS.1770). <b>FAILED</b> marks a dream "
        "that did not work: target not reached (another family wins), no gradient (the "
        "score never moved), maximised by silence, or a score that did not rise; the picture "
        "of the first two kinds is not shown.</p>"
        f"<pre>{html.escape(text)}</pre>"
    )
