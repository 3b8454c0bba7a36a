"""The training input: notes -> raw features (stored or computed) -> normalised tensors.

Nothing here holds a split in memory: audio is read, decoded and featurised batch by batch
(or a batch of stored features is gathered from the mapped cache), in a fixed order, so a
seeded run sees the same batches in every process, with or without the feature cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from nsynth_research.core.errors import DataError
from nsynth_research.core.keras_loop import without_autotuning
from nsynth_research.instruments.augment import augmented
from nsynth_research.instruments.config import AugmentConfig, FeatureConfig
from nsynth_research.instruments.data.audio_dataset import checked_notes
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.features.cache import FeatureCache, batched_features
from nsynth_research.instruments.features.rows import Normalisation
from nsynth_research.instruments.features.stats import FeatureStats

#: Batches the cached pipeline keeps ready: one being trained on, one waiting, one being
#: gathered. Fixed: tf.data's autotuning is off (`without_autotuning`), and the loader already
#: runs at several times the step's rate.
CACHED_PREFETCH = 2


def make_dataset(
    notes: Sequence[Note],
    stats: FeatureStats,
    cfg: FeatureConfig,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    shuffle_buffer: int = 2048,
    drop_remainder: bool = False,
    cache: FeatureCache | None = None,
    augment: AugmentConfig | None = None,
) -> tf.data.Dataset:
    """Batches of (features [B, frames, bins, 1] float32, family labels [B] int32).

    `augment` (training batches only: callers pass it for the train split and nothing else)
    changes each batch on its features, see `augment`; mixup makes the labels soft rows.

    Without a cache, features are computed after batching because one batched STFT is several
    times faster than per-example ones. With a cache (see `features.cache`), each batch's
    stored features are gathered instead, in the same order and with the same normalisation,
    so the batches are identical and only cheaper: gathered and normalised in place in one
    thread, with fixed prefetching (docs/performance.md, "Input pipeline", says why). On the
    computed and augmented paths normalisation uses the train statistics as graph constants.
    Every path runs without tf.data's autotuning (`without_autotuning` says why).
    """
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    check_stats(stats, cfg)
    notes = checked_notes(notes)
    if drop_remainder and len(notes) < batch_size:
        raise DataError(
            f"only {len(notes)} notes, fewer than one batch of {batch_size}, and the last "
            "partial batch is dropped: the dataset would be empty; lower the batch size"
        )
    # One element per note, so the batch count is known: Keras then sizes its progress bar
    # and epoch without running a pass dry first (and without its "ran out of data" warning).
    batches = len(notes) // batch_size if drop_remainder else -(-len(notes) // batch_size)
    known = tf.data.experimental.assert_cardinality(batches)
    augmenting = augment is not None and augment.active
    if cache is not None and not augmenting:
        ds = cache.batches(
            notes,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_remainder=drop_remainder,
            normalise=normalisation(stats, cfg.norm_eps),
        )
        return without_autotuning(ds.apply(known).prefetch(CACHED_PREFETCH))
    norm = stats.normaliser(cfg.norm_eps)

    def normalise(features: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.expand_dims(norm(features), -1), label

    ds = batched_features(
        notes,
        cfg,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        drop_remainder=drop_remainder,
        cache=cache,
    )
    ds = ds.apply(known)
    if augment is not None and augmenting:
        ds = augmented(ds, augment, norm, seed)
    else:
        ds = ds.map(normalise, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return without_autotuning(ds.prefetch(CACHED_PREFETCH))


def normalisation(stats: FeatureStats, eps: float) -> Normalisation:
    """`FeatureStats.normaliser`'s constants as numpy arrays, for the cache's in-place
    normalisation: the same float32 subtract and divide, so the same bits (a test holds the
    cached and computed paths to bit identity)."""
    return np.asarray(stats.mean, np.float32), np.asarray(stats.std, np.float32) + np.float32(eps)


def check_stats(stats: FeatureStats, cfg: FeatureConfig) -> None:
    """Stats made for other features would normalise silently wrong; refuse them by name."""
    shape = (cfg.frames, cfg.bins)
    if np.shape(stats.mean) != shape or np.shape(stats.std) != shape:
        raise DataError(
            f"feature statistics have shape {np.shape(stats.mean)}/{np.shape(stats.std)}, "
            f"but these features are {shape} (frames, bins); recompute the train statistics"
        )
    made_for = getattr(stats, "config", None)
    if made_for is not None and made_for.content_key() != cfg.content_key():
        raise DataError(
            f"feature statistics {stats.fingerprint} were computed for features {made_for!r}, "
            f"not {cfg!r}; recompute the train statistics"
        )
