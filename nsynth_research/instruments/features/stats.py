"""Per-(frame, bin) mean and standard deviation of the train split's features.

They are accumulated in one streaming pass as float64 sums and sums of squares: memory is two
(frames, bins) arrays whatever the split size. float64 is what makes the plain
`E[x^2] - E[x]^2` safe here: features lie in [0, ~15], so the cancellation error in a variance
is ~1e-14, far below the 1e-4 epsilon added to every std.

Computing them costs a full pass over the train split, so they are cached beside the data,
under a key that changes with anything that would change them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from nsynth_research.core.errors import DataError
from nsynth_research.core.files import atomic_save
from nsynth_research.instruments.config import FeatureConfig
from nsynth_research.instruments.features.cache import FeatureCache, batched_features

if TYPE_CHECKING:
    from nsynth_research.instruments.data.notes import Note
    from nsynth_research.instruments.features.cache import FeatureCache

log = logging.getLogger(__name__)

#: Folder under the data root that holds cached statistics.
STATS_DIR = "stats"


@dataclass(frozen=True, eq=False)
class FeatureStats:
    """Train-split feature statistics, and what they were computed from.

    `fingerprint` covers the arrays, the feature config and the train manifest, so a run that
    logs it names exactly which normalisation it used.
    """

    mean: np.ndarray
    std: np.ndarray
    count: int
    fingerprint: str
    #: The features these statistics describe (None only for hand-made stats).
    config: FeatureConfig | None = None
    #: Key of the note list and data they came from (see `manifest_key`).
    identity: str = ""

    @classmethod
    def from_arrays(
        cls,
        mean: np.ndarray,
        std: np.ndarray,
        count: int,
        cfg: FeatureConfig,
        identity: str = "",
    ) -> FeatureStats:
        mean = np.ascontiguousarray(mean, np.float32)
        std = np.ascontiguousarray(std, np.float32)
        fingerprint = _fingerprint(mean, std, count, cfg.model_dump_json(), identity)
        return cls(mean, std, int(count), fingerprint, cfg, identity)

    def save(self, path: Path) -> None:
        """Write atomically, so a crash or a concurrent writer never leaves a torn file that a
        later run would trust."""
        atomic_save(
            Path(path),
            lambda fh: np.savez(
                fh,
                mean=self.mean,
                std=self.std,
                count=np.int64(self.count),
                fingerprint=np.str_(self.fingerprint),
                config=np.str_(self.config.model_dump_json() if self.config else ""),
                identity=np.str_(self.identity),
            ),
        )

    def normaliser(self, eps: float) -> Callable[[tf.Tensor], tf.Tensor]:
        """The one normalisation of features, `(x - mean) / (std + eps)` per (frame, bin),
        shared by training, prediction and benchmarks so they can never drift apart."""
        mean = tf.constant(np.asarray(self.mean, np.float32))
        denom = tf.constant(np.asarray(self.std, np.float32) + np.float32(eps))
        return lambda features: (features - mean) / denom

    @classmethod
    def load(cls, path: Path) -> FeatureStats:
        """Read and verify: a file whose contents do not match its fingerprint is refused."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                mean, std = data["mean"], data["std"]
                count, fingerprint = int(data["count"]), str(data["fingerprint"])
                config_json, identity = str(data["config"]), str(data["identity"])
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"cannot read feature statistics {path}: {exc}") from None
        cfg = FeatureConfig.model_validate_json(config_json) if config_json else None
        if mean.shape != std.shape or mean.ndim != 2 or count < 1:
            raise DataError(
                f"feature statistics {path} are malformed (mean {mean.shape}, std {std.shape}, "
                f"count {count}); delete the file to recompute them"
            )
        if cfg is not None and _fingerprint(mean, std, count, config_json, identity) != fingerprint:
            raise DataError(
                f"feature statistics {path} do not match their fingerprint {fingerprint}; "
                "the file is damaged: delete it to recompute them"
            )
        mean, std = mean.astype(np.float32), std.astype(np.float32)
        return cls(mean, std, count, fingerprint, cfg, identity)


def compute_stats(
    notes: Sequence[Note],
    cfg: FeatureConfig,
    *,
    batch_size: int = 64,
    progress: bool = True,
    identity: str | None = None,
    cache: FeatureCache | None = None,
) -> FeatureStats:
    """One streaming pass over `notes`; `identity` defaults to `manifest_key(notes, cfg)`.

    With a cache holding these notes, their stored features are read instead of recomputed:
    they are the same values, so the statistics are the same too.
    """
    notes = list(notes)
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")

    def batch_sums(x: tf.Tensor) -> tuple[tf.Tensor, ...]:
        x = tf.cast(x, tf.float64)
        return tf.reduce_sum(x, 0), tf.reduce_sum(tf.square(x), 0), tf.shape(x)[0]

    ds = batched_features(notes, cfg, batch_size=batch_size, shuffle=False, seed=0, cache=cache)
    ds = ds.map(
        lambda x, _label: batch_sums(x), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    ).prefetch(2)
    total = np.zeros((cfg.frames, cfg.bins), np.float64)
    total_sq = np.zeros_like(total)
    count = 0
    with tqdm(total=len(notes), desc="train statistics", unit="note", disable=not progress) as bar:
        for s, sq, n in ds:
            total += s.numpy()
            total_sq += sq.numpy()
            count += int(n)
            bar.update(int(n))
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    key = manifest_key(notes, cfg) if identity is None else identity
    return FeatureStats.from_arrays(mean, std, count, cfg, key)


def load_or_compute_stats(
    root: Path,
    notes: Sequence[Note],
    cfg: FeatureConfig,
    *,
    progress: bool = True,
    cache: FeatureCache | None = None,
) -> FeatureStats:
    """Cached train statistics from `<root>/stats/train-<key>.npz`, computed on a miss.

    The key covers the note list, the train split's fingerprint (so re-rendered audio under
    the same names is a miss) and the feature config, so stale statistics are never reused.
    A damaged cache file is recomputed; a read-only data root only costs the cache.
    """
    from nsynth_research.instruments.data.fingerprint import split_fingerprint

    root = Path(root)
    key = manifest_key(notes, cfg, data=split_fingerprint(root, "train"))
    path = stats_path(root, key)
    if path.is_file():
        try:
            stats = FeatureStats.load(path)
        except DataError as exc:
            log.warning("%s; recomputing", exc)
        else:
            if (
                stats.identity == key
                and stats.config is not None
                and stats.config.content_key() == cfg.content_key()
            ):
                return stats
            log.warning("feature statistics %s belong to other data; recomputing", path)
    stats = compute_stats(notes, cfg, progress=progress, identity=key, cache=cache)
    try:
        stats.save(path)
    except OSError as exc:
        log.warning("could not cache feature statistics at %s (%s); continuing", path, exc)
    return stats


def stats_path(root: Path, key: str) -> Path:
    return Path(root) / STATS_DIR / f"train-{key}.npz"


def manifest_key(notes: Sequence[Note], cfg: FeatureConfig, data: str = "") -> str:
    """16-hex key of (notes, features, data fingerprint).

    Notes are sorted because the statistics do not depend on their order; names and labels
    identify them independently of where the corpus happens to be mounted.
    """
    lines = sorted(f"{n.note_str}\t{n.family}" for n in notes)
    payload = json.dumps(
        {"features": cfg.content_key(), "data": data, "notes": lines},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _fingerprint(
    mean: np.ndarray, std: np.ndarray, count: int, cfg_json: str, identity: str
) -> str:
    """Digest of the arrays and what they describe. The feature config enters as the JSON
    stored with them, not re-serialised, so a file written before FeatureConfig gained a
    (defaulted) field still verifies."""
    h = hashlib.sha256()
    for array in (mean, std):
        array = np.ascontiguousarray(array, np.float32)
        h.update(repr(array.shape).encode())
        h.update(array.tobytes())
    h.update(f"{count}\n{cfg_json}\n{identity}".encode())
    return h.hexdigest()[:16]
