"""Every dream of one run, as arrays: what `run` shows and logs, and what the benchmark scores.

The model's features, normalisation and network all come from the model run (its config,
train statistics and logged model), never from the current code's defaults; the real notes
(start notes, dataset examples, the loudness limit of every dream) come from that run's
validation split. One seeded generator drives every random choice, in a fixed order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from nsynth_research.core.errors import UserError
from nsynth_research.dream.ascent import Bounds
from nsynth_research.dream.audio import normalised_features
from nsynth_research.dream.config import DreamConfig, check_families
from nsynth_research.dream.dreams import (
    ClassStart,
    Dream,
    channel_dreams,
    channel_targets,
    class_dreams,
    deep_dream,
)
from nsynth_research.dream.examples import Pool, score_pool
from nsynth_research.dream.flags import diagnose
from nsynth_research.dream.layers import check_layer
from nsynth_research.dream.objectives import probabilities
from nsynth_research.dream.starts import deepdream_note, noise_starts, pick_start_notes
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.families import FAMILIES, FAMILY_INDEX
from nsynth_research.instruments.model import FeatureBlock, feature_blocks
from nsynth_research.instruments.predict import Predictor

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What every dream of a run shares: the model, the scored real notes and the bounds."""

    predictor: Predictor
    config: DreamConfig
    families: tuple[str, ...]
    layer: str
    blocks: list[FeatureBlock]
    channels: list[tuple[str, int]]
    pool: Pool
    bounds: Bounds

    @property
    def shape(self) -> tuple[int, int]:
        cfg = self.predictor.config.features
        return (cfg.frames, cfg.bins)

    def note_inputs(self, indices: list[int]) -> np.ndarray:
        """Normalised model inputs of pool notes, read again from their audio."""
        audio = np.stack([load_audio(self.pool.notes[i].path) for i in indices])
        return normalised_features(audio, self.predictor.stats, self.predictor.config.features)


def prepare(predictor: Predictor, config: DreamConfig) -> Prepared:
    """Check names, find the conv blocks and score the validation notes."""
    model = predictor.model
    families = check_families(config.families)
    layer = check_layer(model, config.layer)
    blocks = feature_blocks(model)
    channels = channel_targets(blocks, config.channels_per_layer)
    root = predictor.config.data.root
    valid = read_split(root, "valid", limit=config.example_pool)
    if not valid:
        raise UserError(f"the validation split of {root} has no notes")
    log.info("scoring %d validation notes", len(valid))
    pool = score_pool(model, valid, predictor.stats, predictor.config.features, channels)
    bounds = Bounds.of(
        predictor.stats,
        predictor.config.features,
        float(pool.loudest_frame.max()),
        float(pool.note_energy.max()),
    )
    return Prepared(predictor, config, families, layer, blocks, channels, pool, bounds)


def class_batch(prep: Prepared, rng: np.random.Generator) -> list[Dream]:
    """Class dreams from noise and from real notes (every family and seed in one batch),
    followed by the real start notes themselves."""
    cfg, pool = prep.config, prep.pool
    noise = noise_starts(rng, len(prep.families) * cfg.seeds, prep.shape, cfg.noise_std)
    starts = [
        ClassStart(FAMILY_INDEX[name], "noise", seed, noise[k * cfg.seeds + seed])
        for k, name in enumerate(prep.families)
        for seed in range(cfg.seeds)
    ]
    picks = pick_start_notes(pool, prep.families, cfg.seeds)
    order = list(dict.fromkeys(p.index for p in picks.values()))
    inputs = dict(zip(order, prep.note_inputs(order), strict=True)) if order else {}
    remarks: dict[int, list[str]] = {}
    for (name, seed), pick in sorted(picks.items(), key=lambda kv: FAMILY_INDEX[kv[0][0]]):
        note = pool.notes[pick.index]
        remarks.setdefault(pick.index, []).extend(pick.flags)
        starts.append(
            ClassStart(
                FAMILY_INDEX[name],
                "note",
                seed,
                inputs[pick.index],
                start_key=f"class/starts/{note.note_str}",
                label=f"{FAMILIES[note.family]} note {note.note_str}",
            )
        )
    log.info("class dreams: %d inputs (%s objective)", len(starts), cfg.objective)
    dreams = class_dreams(prep.predictor.model, starts, cfg, prep.bounds, rng)
    probs = pool.probabilities
    for i in order:
        note = pool.notes[i]
        dreams.append(
            Dream(
                key=f"class/starts/{note.note_str}",
                title=f"{note.note_str} (start)",
                x=inputs[i],
                kind="start",
                target=note.family,
                probs_before=probs[i],
                probs_after=probs[i],
                flags=list(dict.fromkeys(remarks[i])),
            )
        )
    return dreams


def compute(prep: Prepared) -> list[Dream]:
    """All dreams of one run, diagnosed, in the order they are shown."""
    cfg, pool = prep.config, prep.pool
    model = prep.predictor.model
    rng = np.random.default_rng(cfg.seed)
    dreams = class_batch(prep, rng)
    index = deepdream_note(pool, prep.families[0])
    note = pool.notes[index]
    note_x = prep.note_inputs([index])[0]
    log.info("DeepDream of %s at %s", note.note_str, prep.layer)
    dreamed, curves = deep_dream(model, prep.layer, note_x, cfg, prep.bounds, rng)
    p_before, p_after = probabilities(model, np.stack([note_x, dreamed]))
    dreams.append(
        Dream(
            key="deepdream/before",
            title=f"{note.note_str} before",
            x=note_x,
            kind="deepdream-source",
            target=note.family,
            probs_before=p_before,
            probs_after=p_before,
        )
    )
    dreams.append(
        Dream(
            key=f"deepdream/after_{prep.layer}",
            title=f"{note.note_str}, {prep.layer} amplified",
            x=dreamed,
            kind="deepdream",
            target=note.family,
            probs_before=p_before,
            probs_after=p_after,
            curves=curves,
        )
    )
    log.info(
        "channel dreams: %d channels of %s",
        len(prep.channels),
        ", ".join(b.readout for b in prep.blocks),
    )
    if prep.channels:
        dreams.extend(channel_dreams(model, prep.channels, cfg, prep.bounds, rng, prep.shape))
    diagnose(dreams, prep.bounds, cfg.silence_db)
    return dreams
