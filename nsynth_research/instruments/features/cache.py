"""Each note's raw features, computed once per corpus and front-end and read back every epoch.

On a small CPU machine the exact (float64) STFT of a batch costs about as much as a training
step of the seed model on it, so recomputing it every epoch, for every trial of a study,
roughly halves training speed. The features of a note depend only on its audio and the feature
config, so they are stored once, as rows of one file per split (`rows`), and the input
pipeline gathers a batch of rows at a time from a memory map; normalisation stays out of the
cache, so other train statistics (another subset of notes) reuse the same rows.

The folder name covers the feature config, the split's data fingerprint and the stored
dtype: re-rendered audio or other features get a fresh folder, never stale values. float32
rows are bit-identical to what the pipeline would have computed, so results do not depend on
whether the cache is on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf
from tqdm.auto import tqdm

from nsynth_research.core.errors import DataError
from nsynth_research.core.files import remove_stale_temporaries
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.data.audio import audio_batches
from nsynth_research.instruments.data.audio_dataset import epoch_order
from nsynth_research.instruments.features.batches import computed_features
from nsynth_research.instruments.features.rows import CACHE_DIR, Gatherer, Normalisation, RowFile
from nsynth_research.instruments.features.spectrogram import tf_features

if TYPE_CHECKING:
    from nsynth_research.instruments.data.notes import Note

log = logging.getLogger(__name__)

__all__ = ["CACHE_DIR", "FeatureCache", "batched_features", "cache_dir", "ensure_cached"]

#: Disk space left free beyond what the cache needs.
_HEADROOM_BYTES = 512 * 2**20
#: Temporary files older than this are leftovers of a killed writer, not a live one's.
_STALE_TMP_SECONDS = 600.0
#: A fill makes its rows durable this often, so a killed first pass keeps what it computed.
_COMMIT_SECONDS = 30.0
#: Bytes per stored value, by cache dtype; float16 halves the disk and the reads, rounding
#: features (in [0, ~15]) by at most 2**-11 of their value, far below their train std.
ITEMSIZE = {"float32": 4, "float16": 2}


@dataclass(frozen=True)
class FeatureCache:
    """A folder known to hold the features of every note it is asked for, and where.

    Only `ensure_cached` makes one, after filling every missing row, so the pipeline never
    meets a missing note mid-epoch.
    """

    directory: Path
    cfg: FeatureConfig
    dtype: str = "float32"
    #: Note name -> row in the folder's row file.
    rows: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def store(self) -> RowFile:
        return RowFile(self.directory, self.cfg.frames, self.cfg.bins, self.dtype)

    def batches(
        self,
        notes: Sequence[Note],
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_remainder: bool = False,
        normalise: Normalisation | None = None,
    ) -> tf.data.Dataset:
        """Batches of (features, labels [B] int32) in the order the audio pipeline uses for
        plain files (the same seeded permutation per epoch). Raw features are [B, frames,
        bins] float32; with `normalise`, `(x - mean) / denom` in float32 as [B, frames, bins,
        1], the same bits as `FeatureStats.normaliser` gives.

        One batch is one gather from the mapped rows in the thread that asks for it: no
        per-note reads, buffers or worker threads compete with the training step.
        """
        missing = [n.note_str for n in notes if n.note_str not in self.rows]
        if missing:
            raise DataError(
                f"{len(missing)} notes (e.g. {missing[0]}) are not in the feature cache "
                f"{self.directory}; fill it with ensure_cached first"
            )
        where = [self.rows[n.note_str] for n in notes]
        # float16 rows are normalised by a compiled cast, subtract and divide (one pass); numpy
        # would widen them an element at a time, at several times a training step's share.
        widened = None
        if normalise is not None and self.dtype == "float16":
            widened = half_normaliser(normalise, self.cfg)
        compiled = widened is not None
        gather = Gatherer(self.store.mapped(), where, None if compiled else normalise,
                          widen=not compiled)  # fmt: skip
        labels = tf.constant([n.family for n in notes], tf.int32)
        shape = [None, self.cfg.frames, self.cfg.bins]
        shape += [1] if normalise is not None and not compiled else []
        dtype = tf.float16 if compiled else tf.float32

        def read(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            x = tf.ensure_shape(tf.numpy_function(gather, [i], dtype, stateful=False), shape)
            return (x if widened is None else widened(x)), tf.gather(labels, i)

        order = epoch_order(len(notes), shuffle=shuffle, seed=seed)
        return order.batch(batch_size, drop_remainder=drop_remainder).map(read)


def half_normaliser(normalise: Normalisation, cfg: FeatureConfig) -> Callable:
    """float16 batches [B, frames, bins] -> `(x - mean) / denom` in float32 as [B, frames,
    bins, 1], compiled by XLA into one pass. Not bit for bit the graph normaliser (XLA may
    divide by multiplying with a reciprocal); float16 rows already round the features far
    more than that."""
    mean, denom = normalise  # NumPy arrays, made tensors inside the function (see spectrogram)

    @tf.function(
        jit_compile=True,
        input_signature=[tf.TensorSpec([None, cfg.frames, cfg.bins], tf.float16)],
    )
    def widened(x: tf.Tensor) -> tf.Tensor:
        return tf.expand_dims((tf.cast(x, tf.float32) - tf.constant(mean)) / tf.constant(denom), -1)

    return widened


def batched_features(
    notes: Sequence[Note],
    cfg: FeatureConfig,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    shuffle_buffer: int = 2048,
    drop_remainder: bool = False,
    cache: FeatureCache | None = None,
) -> tf.data.Dataset:
    """Batches of (raw features [B, frames, bins] float32, labels [B] int32): read from the
    cache when given one, else computed from the audio; both give the same batches."""
    if cache is None:
        return computed_features(
            notes,
            cfg,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            shuffle_buffer=shuffle_buffer,
            drop_remainder=drop_remainder,
        )
    return cache.batches(
        notes, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder
    )


def cache_dir(root: Path, split: str, cfg: FeatureConfig, dtype: str = "float32") -> Path:
    """`<root>/features/<split>-<key>`, the key covering the features, the split's data, the
    stored dtype and the row-file layout."""
    from nsynth_research.instruments.data.fingerprint import split_fingerprint

    features = json.dumps(cfg.content_key(), sort_keys=True)
    payload = f"{features};{split_fingerprint(root, split)};rows-1;{dtype}"
    key = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return Path(root) / CACHE_DIR / f"{split}-{key}"


def ensure_cached(
    notes: Sequence[Note],
    cfg: FeatureConfig,
    directory: Path,
    *,
    batch_size: int = 32,
    progress: bool = True,
    label: str = "features",
    dtype: str = "float32",
) -> FeatureCache:
    """Compute and store the features of every note not yet in `directory`.

    A rerun over a complete cache only reads the names. Refuses up front, naming the sizes,
    when the disk cannot hold the missing rows: a full disk mid-study would fail trials. Two
    processes filling one folder take turns; the second finds the first one's rows.
    """
    store = RowFile(Path(directory), cfg.frames, cfg.bins, dtype)
    index = store.index()
    if not _missing(notes, index):
        return FeatureCache(store.directory, cfg, dtype, index)
    try:
        store.directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the feature cache {store.directory} ({exc}); make the data root "
            "writable or set data.feature_cache=false"
        ) from None
    remove_stale_temporaries(store.directory, _STALE_TMP_SECONDS)
    with store.locked():
        missing = _missing(notes, store.index())
        if missing:
            _check_space(store, len(missing))
            _fill(store, missing, cfg, batch_size=batch_size, progress=progress, label=label)
    return FeatureCache(store.directory, cfg, dtype, store.index())


def _missing(notes: Sequence[Note], index: Mapping[str, int]) -> list[Note]:
    missing, seen = [], set()
    for note in notes:
        if note.note_str not in index and note.note_str not in seen:
            seen.add(note.note_str)
            missing.append(note)
    return missing


def _check_space(store: RowFile, count: int) -> None:
    need = count * store.row_bytes
    free = shutil.disk_usage(store.directory).free
    if need + _HEADROOM_BYTES > free:
        raise DataError(
            f"the feature cache for {count} notes needs {need / 2**30:.2f} GiB, but "
            f"{store.directory} has {free / 2**30:.2f} GiB free; free some space (make "
            "clean-cache) or set data.feature_cache=false to compute features every epoch"
        )


def _fill(
    store: RowFile,
    missing: list[Note],
    cfg: FeatureConfig,
    *,
    batch_size: int,
    progress: bool,
    label: str,
) -> None:
    """One pass over the missing notes' audio (archives front to back, in member order),
    rows appended in the order features arrive."""
    log.info("caching %s of %d notes in %s", label, len(missing), store.directory)
    committed = time.monotonic()
    with (
        store.appender() as rows,
        tqdm(total=len(missing), desc=label, unit="note", disable=not progress) as bar,
    ):
        # Audio read ahead in a thread (`audio_batches`) while the batched STFT of the last
        # batch runs: from an archive 2x faster than through tf.data's from_generator.
        for batch, audio in audio_batches(missing, batch_size):
            rows.add(tf_features(audio, cfg).numpy(), [n.note_str for n in batch])
            bar.update(len(batch))
            if time.monotonic() - committed > _COMMIT_SECONDS:
                rows.commit()
                committed = time.monotonic()


def choose_cache(
    root: Path, n_notes: int, cfg: FeatureConfig, splits: Sequence[str] = ("train", "valid")
) -> str | None:
    """`data.feature_cache: auto`: the cache dtype of this front-end for a corpus this large.

    A front-end that already has a cache under `root` keeps its dtype (when the rest still
    fits), so a study whose trials come back to a front-end, from any worker and however full
    the disk has become meanwhile, never fills a second copy of it in another dtype. Else by
    size: float32 (exact) when it needs at most half the free space, else float16 when that
    does, else no cache (features computed every epoch): a cache must never be what fills a
    disk that runs, logs and other users share. Sizes differ by front-end: a linear STFT
    note is 515 kB as float32, a 64-band log-mel one 32 kB as float16.
    """
    probe = Path(root)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    held = _existing(root, cfg, splits)
    if held is not None:
        dtype, stored = held
        need = n_notes * cfg.frames * cfg.bins * ITEMSIZE[dtype] - stored
        if need + _HEADROOM_BYTES <= free:
            return dtype
        log.warning(
            "the %s feature cache of %s cannot take %d more notes on this disk; computing "
            "features every epoch instead of filling a second cache",
            dtype,
            root,
            n_notes,
        )
        return None
    for dtype in ITEMSIZE:
        if n_notes * cfg.frames * cfg.bins * ITEMSIZE[dtype] + _HEADROOM_BYTES <= free / 2:
            return dtype
    return None


def _existing(root: Path, cfg: FeatureConfig, splits: Sequence[str]) -> tuple[str, int] | None:
    """(dtype, bytes stored) of this front-end's cache under `root`, if one was started."""
    for dtype in ITEMSIZE:
        stores = []
        for split in splits:
            try:
                directory = cache_dir(root, split, cfg, dtype)
            except DataError:  # no such split here
                continue
            store = RowFile(directory, cfg.frames, cfg.bins, dtype)
            if store.names.exists():
                stores.append(store)
        if stores:
            return dtype, sum(s.data.stat().st_size for s in stores if s.data.exists())
    return None
