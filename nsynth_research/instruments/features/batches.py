"""Raw features computed from streamed audio, batch by batch: the path the feature cache,
the statistics pass and (without a cache) training all share."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.data.audio_dataset import make_audio_dataset
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.features.spectrogram import tf_features


def computed_features(
    notes: Sequence[Note],
    cfg: FeatureConfig,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    shuffle_buffer: int = 2048,
    drop_remainder: bool = False,
    positions: bool = False,
) -> tf.data.Dataset:
    """Batches of (raw features [B, frames, bins] float32, labels [B] int32) computed from
    the audio after batching (one batched STFT is several times faster than per-note ones).

    With `positions`, the second element is each note's index in `notes` instead of its
    label: the feature cache fills itself this way, so what it stores is exactly what this
    path computes.
    """
    ds = make_audio_dataset(
        notes, shuffle=shuffle, seed=seed, shuffle_buffer=shuffle_buffer, positions=positions
    )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.map(
        lambda audio, label: (tf_features(audio, cfg), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
