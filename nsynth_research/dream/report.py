"""A dream's artifacts in one folder: WAVs and their round trip, pictures, numbers, the page.

Layout (relative to the folder, which `run` logs as the run's artifact root):
`class/<family>_<start>.{png,wav}`, `class/grid_<start>.png`, `class/sources/...`,
`deepdream/...`, `filters/conv0_kernels.png`, `filters/channels.png`, `channels/...`,
`summary.json` and `index.html`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import matplotlib.pyplot as plt
import numpy as np

from nsynth_research.dream.audio import (
    denormalise,
    dream_audio,
    normalised_features,
    read_wav,
    write_wav,
)
from nsynth_research.dream.dreams import Dream
from nsynth_research.dream.figures import (
    channel_grid_figure,
    grid_figure,
    kernel_figure,
    spectrogram_figure,
)
from nsynth_research.dream.objectives import probabilities
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.families import FAMILIES
from nsynth_research.instruments.features.stats import FeatureStats


@dataclass(frozen=True)
class Decoder:
    """What turns a normalised input back into audio and audio back into model input."""

    model: keras.Model
    stats: FeatureStats
    features: FeatureConfig
    griffin_lim_iters: int
    seed: int


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def hear(dreams: Sequence[Dream], decoder: Decoder, out: Path) -> None:
    """Write every dream's WAV, read the files back and classify them (the round trip).

    The results go into each dream's `extra`: `roundtrip_top` (the family the WAV is heard
    as) and, where the dream has a target, `roundtrip_prob` and `roundtrip_hit`.
    """
    paths = []
    for i, d in enumerate(dreams):
        # Undreamed notes go through Griffin-Lim too: they are the fair "before".
        audio = dream_audio(
            d.x,
            decoder.stats,
            decoder.features,
            n_iter=decoder.griffin_lim_iters,
            seed=decoder.seed + i,
        )
        paths.append(write_wav(out / f"{d.key}.wav", audio))
        d.extra["peak"] = float(np.max(np.abs(audio)))
    for lo in range(0, len(paths), 16):
        chunk = paths[lo : lo + 16]
        x = normalised_features(
            np.stack([read_wav(p) for p in chunk]), decoder.stats, decoder.features
        )
        probs = probabilities(decoder.model, x)
        for d, p in zip(dreams[lo : lo + 16], probs, strict=True):
            d.extra["roundtrip_top"] = FAMILIES[int(np.argmax(p))]
            if d.target is not None:
                d.extra["roundtrip_prob"] = float(p[d.target])
                d.extra["roundtrip_hit"] = float(int(np.argmax(p)) == d.target)


def draw(
    dreams: Sequence[Dream],
    decoder: Decoder,
    out: Path,
    *,
    layer: str,
    first_kernel: np.ndarray,
) -> list[Path]:
    """Every dream's own PNG, the class grids, the DeepDream before/after, the filter grids."""
    feats = {d.key: denormalise(d.x, decoder.stats, decoder.features) for d in dreams}
    cfg = decoder.features
    written = [
        _save(spectrogram_figure(feats[d.key], cfg, _caption(d)), out / f"{d.key}.png")
        for d in dreams
    ]
    classes = [d for d in dreams if d.kind == "class"]
    for start in dict.fromkeys(str(d.extra["start"]) for d in classes):
        group = [d for d in classes if d.extra["start"] == start]
        fig = grid_figure(
            [feats[d.key] for d in group],
            [f"{FAMILIES[d.target]}  p {d.prob_before:.2f} -> {d.prob_after:.2f}" for d in group],
            cfg,
            f"Class dreams from {start}: inputs that maximise each family's logit",
        )
        written.append(_save(fig, out / f"class/grid_{start.replace(' ', '_')}.png"))
    deep = [d for d in dreams if d.kind in ("deepdream", "deepdream-source")]
    if deep:
        fig = grid_figure(
            [feats[d.key] for d in deep],
            [d.title for d in deep],
            cfg,
            f"DeepDream of a note: {layer} amplified",
        )
        written.append(_save(fig, out / "deepdream/before_after.png"))
    written.append(
        _save(kernel_figure(first_kernel, "First conv kernels"), out / "filters/conv0_kernels.png")
    )
    panels: dict[str, list[tuple[int, np.ndarray]]] = {}
    for d in dreams:
        if d.kind == "channel":
            panels.setdefault(str(d.extra["layer"]), []).append(
                (int(d.extra["channel"]), feats[d.key])
            )
    if panels:
        written.append(_save(channel_grid_figure(panels, cfg), out / "filters/channels.png"))
    return written


def _caption(d: Dream) -> str:
    if d.target is None or d.prob_before is None or d.prob_after is None:
        return d.title
    return f"{d.title}: p({FAMILIES[d.target]}) {d.prob_before:.2f} -> {d.prob_after:.2f}"


def family_table(dreams: Sequence[Dream]) -> dict[str, dict[str, Any]]:
    """Per target family: probability before/after per start, and the round-trip rate."""
    table: dict[str, dict[str, Any]] = {}
    for d in dreams:
        if d.kind != "class" or d.target is None:
            continue
        row = table.setdefault(FAMILIES[d.target], {"starts": {}, "hits": []})
        row["starts"][str(d.extra["start"])] = {
            "prob_before": d.prob_before,
            "prob_after": d.prob_after,
            "roundtrip_prob": d.extra.get("roundtrip_prob"),
            "roundtrip_top": d.extra.get("roundtrip_top"),
        }
        row["hits"].append(d.extra.get("roundtrip_hit", 0.0))
    for row in table.values():
        hits = row.pop("hits")
        row["roundtrip_rate"] = float(np.mean(hits)) if hits else None
    return table


def format_table(table: dict[str, dict[str, Any]], sources: Sequence[Dream]) -> str:
    """The closing summary printed by `make dream`: one line per family."""
    lines = ["family       start          p before  p after  round trip (heard as)     rate"]
    for family, row in table.items():
        for i, (start, s) in enumerate(row["starts"].items()):
            rate = f"{row['roundtrip_rate']:.2f}" if i == 0 else ""
            trip = f"{s['roundtrip_prob']:.2f} ({s['roundtrip_top']})"
            lines.append(
                f"{family if i == 0 else '':<12} {start:<14} {s['prob_before']:8.3f} "
                f"{s['prob_after']:8.3f}  {trip:<24} {rate:>5}"
            )
    rates = [r["roundtrip_rate"] for r in table.values()]
    lines.append(f"round-trip rate over all class dreams: {np.mean(rates):.2f}")
    if sources:
        # Griffin-Lim's own damage: does the model still hear a real note as it did before?
        same = sum(d.extra.get("roundtrip_top") == d.extra.get("input_top") for d in sources)
        lines.append(
            f"control: {same} of {len(sources)} real start notes are classified the same after "
            "features -> Griffin-Lim -> features"
        )
    return "\n".join(lines)


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    return path
