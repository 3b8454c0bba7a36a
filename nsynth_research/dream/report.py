"""A dream's numbers: its audio and round trip, the per-family table, summary.json, the
arrays, and the lines `make dream` prints.

Artifact layout (relative to the folder `run` logs as the run's root): `<key>.wav` for every
dream and real start note (`class/<family>/<start>_s<seed>`, `class/starts/<note>`,
`deepdream/...`, `channels/<layer>_<channel>`), `dreams.npz`, `summary.json`, the figures
(`figures.draw`) and `index.html` (`page.write_page`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nsynth_research.core.files import atomic_write_text
from nsynth_research.dream.audio import (
    dream_audio,
    inaudible,
    normalised_features,
    read_wav,
    to_full_scale,
    write_wav,
)
from nsynth_research.dream.dreams import Dream
from nsynth_research.dream.flags import failed
from nsynth_research.dream.loudness import integrated_loudness
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


def hear(dreams: Sequence[Dream], decoder: Decoder, out: Path) -> dict[str, np.ndarray]:
    """Write every dream's WAV (at or below full scale), read the files back and classify
    them (the round trip); returns the written audio by key.

    Sets `extra`: `peak_raw` (Griffin-Lim's own peak), `gain_db` (applied to bring it within
    full scale; 0 when none was needed), `peak`, `loudness` (LUFS), `heard_as`, `heard_p`;
    or `no_audio` (why) for features that cannot be turned back into a signal.
    """
    reason = inaudible(decoder.features)
    if reason or not dreams:
        for d in dreams:
            d.extra["no_audio"] = reason
        return {}
    # Real notes go through Griffin-Lim too: they are the fair "before".
    raw = dream_audio(
        np.stack([d.x for d in dreams]),
        decoder.stats,
        decoder.features,
        n_iter=decoder.griffin_lim_iters,
        seed=decoder.seed,
    )
    written: dict[str, np.ndarray] = {}
    paths = []
    for d, signal in zip(dreams, raw, strict=True):
        audio, gain_db = to_full_scale(signal)
        paths.append(write_wav(out / f"{d.key}.wav", audio))
        written[d.key] = audio
        d.extra.update(
            peak_raw=float(np.max(np.abs(signal))),
            gain_db=gain_db,
            peak=float(np.max(np.abs(audio))),
            loudness=integrated_loudness(audio),
        )
    for lo in range(0, len(paths), 32):
        chunk = paths[lo : lo + 32]
        x = normalised_features(
            np.stack([read_wav(p) for p in chunk]), decoder.stats, decoder.features
        )
        for d, p in zip(dreams[lo : lo + 32], probabilities(decoder.model, x), strict=True):
            d.extra["heard_as"] = FAMILIES[int(np.argmax(p))]
            if d.target is not None:
                d.extra["heard_p"] = float(p[d.target])
    return written


def family_table(dreams: Sequence[Dream]) -> dict[str, dict[str, Any]]:
    """Per target family: each class dream's outcome, and the success and round-trip rates."""
    table: dict[str, dict[str, Any]] = {}
    for d in dreams:
        if d.kind != "class" or d.target is None:
            continue
        row = table.setdefault(FAMILIES[d.target], {"dreams": []})
        row["dreams"].append(
            {
                "key": d.key,
                "start": d.start,
                "seed": d.seed,
                "start_note": d.start_key,
                "reached": bool(d.reached),
                "p_before": float(d.probs_before[d.target]) if d.probs_before is not None else None,
                "p_after": float(d.probs_after[d.target]) if d.probs_after is not None else None,
                "heard_as": d.extra.get("heard_as"),
                "heard_p": d.extra.get("heard_p"),
                "flags": list(d.flags),
            }
        )
    for name, row in table.items():
        for start in ("noise", "note"):
            mine = [r for r in row["dreams"] if r["start"] == start]
            row[f"reached_{start}"] = sum(r["reached"] for r in mine)
            row[f"count_{start}"] = len(mine)
        row["heard"] = sum(r["heard_as"] == name for r in row["dreams"])
        row["count"] = len(row["dreams"])
    return table


def control(dreams: Sequence[Dream]) -> tuple[int, int]:
    """Griffin-Lim's own damage: of the distinct real start notes that were heard, how many
    the model still classifies as it did before the features -> Griffin-Lim -> features
    round trip."""
    starts = {d.key: d for d in dreams if d.kind == "start" and "heard_as" in d.extra}
    same = sum(
        d.extra["heard_as"] == FAMILIES[int(np.argmax(d.probs_after))]
        for d in starts.values()
        if d.probs_after is not None
    )
    return same, len(starts)


def format_table(table: dict[str, dict[str, Any]], dreams: Sequence[Dream]) -> str:
    """The closing summary printed by `make dream`: one line per family, then the totals."""
    lines = ["family       reached (noise)  reached (note)  heard after Griffin-Lim"]
    for family, row in table.items():
        lines.append(
            f"{family:<12} {row['reached_noise']:>7} of {row['count_noise']:<6} "
            f"{row['reached_note']:>6} of {row['count_note']:<6} "
            f"{row['heard']:>8} of {row['count']}"
        )
    same, total = control(dreams)
    if total:
        lines.append(
            f"control: {same} of {total} distinct real start notes are classified the same "
            "after features -> Griffin-Lim -> features"
        )
    else:
        lines.append("control: none (no audio for these features)")
    channels = [d for d in dreams if d.kind == "channel"]
    if channels:
        lines.append(f"channels: {sum(map(failed, channels))} of {len(channels)} flagged")
    audio = [d for d in dreams if "peak" in d.extra]
    if audio:
        turned = [d.extra["gain_db"] for d in audio if d.extra["gain_db"] < 0]
        lines.append(
            f"WAVs: {len(audio)}, highest peak {max(d.extra['peak'] for d in audio):.3f}; "
            f"{len(turned)} turned down to full scale"
            + (f" (by {-min(turned):.1f} dB at most)" if turned else "")
        )
    return "\n".join(lines)


#: Kinds that are optimised inputs (the others are real notes, kept as their note names).
DREAMED = ("class", "deepdream", "channel")


def save_arrays(out: Path, dreams: Sequence[Dream]) -> Path:
    """Every dreamed input (normalised, exactly what the model saw) in one npz, by key."""
    path = out / "dreams.npz"
    arrays = {d.key: d.x.astype(np.float32) for d in dreams if d.kind in DREAMED}
    # numpy's stub lets **arrays bind savez's bool `allow_pickle` too, which arrays never do.
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    return path


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / "summary.json"
    atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=False) + "\n")
    return path
