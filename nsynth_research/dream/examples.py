"""Real validation notes beside the dreams: scored once, then ranked per class and channel.

A feature visualisation is read against the dataset examples that most activate the same
unit (Olah et al., "Feature Visualization"): the optimised input says what the unit could
respond to, the real notes what it does respond to. One pass over the validation notes gives
everything the dream needs from real data: each note's logits (for the class rankings and for
start notes that the model classifies correctly), each visualised channel's mean activation,
and each note's loudest frame and total energy (the energy limits of every dream, see
`ascent.Bounds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from nsynth_research.dream.ascent import frame_energy
from nsynth_research.dream.audio import normalised_features
from nsynth_research.dream.layers import output_layer
from nsynth_research.dream.objectives import class_scores, views
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.data.audio import iter_audio
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.features.stats import FeatureStats


@dataclass
class Pool:
    """The scored validation notes, in `notes` order."""

    notes: list[Note]
    logits: np.ndarray
    #: (notes, channels): mean activation of each visualised (layer, channel).
    channels: np.ndarray
    #: (notes,): energy of each note's loudest frame (sum over bins of |S|^2).
    loudest_frame: np.ndarray
    #: (notes,): each note's energy summed over all its frames.
    note_energy: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return np.argmax(self.logits, axis=1)

    @property
    def probabilities(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def top_for_class(self, family: int, kind: str, k: int) -> list[tuple[int, float]]:
        """(note index, score) of the `k` notes that score highest for `family`."""
        index = tf.fill([len(self.notes)], family)
        score = class_scores(tf.constant(self.logits), index, kind)[0].numpy()
        return _top(score, k)

    def top_for_channel(self, column: int, k: int) -> list[tuple[int, float]]:
        return _top(self.channels[:, column], k)


def _top(score: np.ndarray, k: int) -> list[tuple[int, float]]:
    # Stable on ties (e.g. a channel that is 0 everywhere): the first notes by name.
    order = np.argsort(-score, kind="stable")[:k]
    return [(int(i), float(score[i])) for i in order]


def score_pool(
    model: keras.Model,
    notes: Sequence[Note],
    stats: FeatureStats,
    cfg: FeatureConfig,
    channels: Sequence[tuple[str, int]],
    batch: int = 32,
) -> Pool:
    """Logits, channel means and loudest frame of every note, one forward pass per batch."""
    layers = list(dict.fromkeys(layer for layer, _ in channels))
    outputs = views(model, [output_layer(model), *layers])
    picks = [(1 + layers.index(layer), int(c)) for layer, c in channels]
    logits, means, loudest, total = [], [], [], []
    ordered: list[Note] = []
    chunk: list[np.ndarray] = []

    def flush() -> None:
        feats = normalised_features(np.stack(chunk), stats, cfg)
        outs = [tf.cast(o, tf.float32) for o in outputs(tf.constant(feats))]
        logits.append(outs[0].numpy())
        per_channel = [
            tf.reduce_mean(o, axis=list(range(1, o.shape.rank - 1))).numpy() for o in outs[1:]
        ]
        means.append(
            np.stack([per_channel[k - 1][:, c] for k, c in picks], axis=1)
            if picks
            else np.zeros((len(chunk), 0), np.float32)
        )
        raw = feats * (stats.std + cfg.norm_eps) + stats.mean
        energy = frame_energy(raw, cfg.log_scale)
        loudest.append(energy.max(axis=1))
        total.append(energy.sum(axis=1))
        chunk.clear()

    for note, audio in tqdm(iter_audio(notes), total=len(notes), desc="validation notes"):
        ordered.append(note)
        chunk.append(audio)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    return Pool(
        ordered,
        np.concatenate(logits),
        np.concatenate(means),
        np.concatenate(loudest),
        np.concatenate(total),
    )
