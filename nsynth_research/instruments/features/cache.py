"""Each note's log-STFT features, computed once per corpus and read back every epoch.

On a small CPU machine the exact (float64) STFT of a batch costs about as much as a training
step of the seed model on it, so recomputing it every epoch, for every trial of a study,
roughly halves training speed. The features of a note depend only on its audio and the feature
config, so they are stored once, one raw float32 file per note, and the input pipeline reads
those instead; normalisation stays in the pipeline, so other train statistics (another subset
of notes) reuse the same files.

Files are written atomically (temporary name, then rename), so a killed run or two workers
filling the same cache leave only whole files. The folder name covers the feature config and
the split's data fingerprint: re-rendered audio or other features get a fresh folder, never
stale values. A read-back file is bit-identical to what the pipeline would have computed, so
results do not depend on whether the cache is on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from nsynth_research.core.errors import DataError
from nsynth_research.core.files import atomic_write_bytes, remove_stale_temporaries
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.data.audio_dataset import epoch_order
from nsynth_research.instruments.features.batches import computed_features

if TYPE_CHECKING:
    from nsynth_research.instruments.data.notes import Note

log = logging.getLogger(__name__)

#: Folder under the data root that holds cached features.
CACHE_DIR = "features"
#: Disk space left free beyond what the cache needs.
_HEADROOM_BYTES = 512 * 2**20
#: Temporary files older than this are leftovers of a killed writer, not a live one's.
_STALE_TMP_SECONDS = 600.0
_SUFFIX = ".f32"
#: Bytes per stored value, by cache dtype; float16 halves the disk and the reads, rounding
#: features (in [0, ~15]) by at most 2**-11 of their value, far below their train std.
ITEMSIZE = {"float32": 4, "float16": 2}


@dataclass(frozen=True)
class FeatureCache:
    """A folder known to hold the features of every note it is asked for.

    Only `ensure_cached` makes one, after checking or writing every file, so the pipeline can
    read from it without meeting a missing file mid-epoch.
    """

    directory: Path
    cfg: FeatureConfig
    dtype: str = "float32"

    def path_for(self, note: Note) -> Path:
        suffix = _SUFFIX if self.dtype == "float32" else ".f16"
        return self.directory / f"{note.note_str}{suffix}"

    def dataset(self, notes: Sequence[Note], *, shuffle: bool, seed: int) -> tf.data.Dataset:
        """Un-batched (features [frames, bins] float32, label int32), in the order the audio
        pipeline would use for plain files: the same seeded permutation per epoch."""
        paths = tf.constant([str(self.path_for(n)) for n in notes], tf.string)
        labels = tf.constant([n.family for n in notes], tf.int32)
        shape, dtype = [self.cfg.frames, self.cfg.bins], self.dtype

        def read(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            raw = tf.io.decode_raw(tf.io.read_file(tf.gather(paths, i)), tf.as_dtype(dtype))
            return tf.reshape(tf.cast(raw, tf.float32), shape), tf.gather(labels, i)

        order = epoch_order(len(notes), shuffle=shuffle, seed=seed)
        return order.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


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
    ds = cache.dataset(notes, shuffle=shuffle, seed=seed)
    return ds.batch(batch_size, drop_remainder=drop_remainder)


def cache_dir(root: Path, split: str, cfg: FeatureConfig, dtype: str = "float32") -> Path:
    """`<root>/features/<split>-<key>`, the key covering the features, the split's data and
    the stored dtype (float32 keys are unchanged from before float16 existed)."""
    from nsynth_research.instruments.data.fingerprint import split_fingerprint

    payload = f"{json.dumps(cfg.content_key(), sort_keys=True)};{split_fingerprint(root, split)}"
    if dtype != "float32":
        payload += f";{dtype}"
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

    A rerun over a complete cache only checks file sizes. Refuses up front, naming the sizes,
    when the disk cannot hold the missing files: a full disk mid-study would fail trials.
    """
    cache = FeatureCache(Path(directory), cfg, dtype)
    nbytes = cfg.frames * cfg.bins * ITEMSIZE[dtype]
    missing = _missing(notes, cache, nbytes)
    if not missing:
        return cache
    try:
        cache.directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the feature cache {cache.directory} ({exc}); make the data root "
            "writable or set data.feature_cache=false"
        ) from None
    remove_stale_temporaries(cache.directory, _STALE_TMP_SECONDS)
    need = len(missing) * nbytes
    free = shutil.disk_usage(cache.directory).free
    if need + _HEADROOM_BYTES > free:
        raise DataError(
            f"the feature cache for {len(missing)} notes needs {need / 2**30:.2f} GiB, but "
            f"{cache.directory} has {free / 2**30:.2f} GiB free; free some space or set "
            "data.feature_cache=false to compute features every epoch instead"
        )
    log.info("caching %s of %d notes in %s", label, len(missing), cache.directory)
    ds = computed_features(
        missing, cfg, batch_size=batch_size, shuffle=False, seed=0, positions=True
    ).prefetch(2)
    with tqdm(total=len(missing), desc=label, unit="note", disable=not progress) as bar:
        for features, where in ds:
            for x, i in zip(features.numpy(), where.numpy(), strict=True):
                data = np.ascontiguousarray(x, "<f4" if dtype == "float32" else "<f2").tobytes()
                atomic_write_bytes(cache.path_for(missing[i]), data)
            bar.update(len(where))
    return cache


def _missing(notes: Sequence[Note], cache: FeatureCache, nbytes: int) -> list[Note]:
    """Notes without a complete file (a wrong size is a file from another feature shape)."""
    missing, seen = [], set()
    for note in notes:
        path = cache.path_for(note)
        if path in seen:
            continue
        seen.add(path)
        try:
            complete = path.stat().st_size == nbytes
        except FileNotFoundError:
            complete = False
        if not complete:
            missing.append(note)
    return missing


def choose_cache(root: Path, n_notes: int, cfg: FeatureConfig) -> str | None:
    """`data.feature_cache: auto`: the cache dtype a corpus this large gets on this disk.

    float32 (exact) when it needs at most half the free space, else float16 when that does,
    else no cache (features computed every epoch): a cache must never be what fills a disk
    that runs, logs and other users share. Full NSynth's train split is ~145 GB as float32 and
    ~73 GB as float16.
    """
    probe = Path(root)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    for dtype in ("float32", "float16"):
        if n_notes * cfg.frames * cfg.bins * ITEMSIZE[dtype] + _HEADROOM_BYTES <= free / 2:
            return dtype
    return None
