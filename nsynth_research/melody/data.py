"""From tunes to training examples: tune-disjoint splits, keys, the train vocabulary, and the
(previous `sequence_length` events -> next event) windows the network learns from.

Splits are by tune, never by event, so no test melody is half seen in training; they depend
only on the sorted tune ids and `split.seed`. Every event of a tune is a target exactly
once, its context left-padded with BOS, so the network and the n-gram baselines are scored
on the same events of the same tunes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import tensorflow as tf

from nsynth_research.core.errors import DataError
from nsynth_research.melody.config import MelodyConfig, SplitConfig, TransposeConfig
from nsynth_research.melody.corpus import ParsedCorpus, Tune, load_corpus
from nsynth_research.melody.tokens import BOS_ID, REST, Event, Vocabulary

SPLITS = ("train", "valid", "test")
#: MIDI range kept by transposition (a shifted note outside it would be unplayable).
LOWEST, HIGHEST = 21, 108


def split_tunes(tunes: Sequence[Tune], cfg: SplitConfig) -> dict[str, list[Tune]]:
    """Tune-disjoint train/valid/test: a seeded permutation of the sorted tune ids, cut by
    the configured fractions (each held-out split gets at least one tune)."""
    ordered = sorted(tunes, key=lambda t: t.id)
    order = np.random.default_rng(cfg.seed).permutation(len(ordered))
    n_valid = max(1, round(cfg.valid * len(ordered)))
    n_test = max(1, round(cfg.test * len(ordered)))
    if n_valid + n_test >= len(ordered):
        raise DataError(
            f"{len(ordered)} tunes are too few to split train/valid/test; read more files "
            "(corpus.files) or more tunes (corpus.max_tunes)"
        )
    picked = [ordered[i] for i in order]
    return {
        "test": picked[:n_test],
        "valid": picked[n_test : n_test + n_valid],
        "train": picked[n_test + n_valid :],
    }


def shift(events: Sequence[Event], semitones: int) -> tuple[Event, ...] | None:
    """Events moved by `semitones`; None when a note would leave the piano's range."""
    out = tuple(e if e.pitch == REST else Event(e.pitch + semitones, e.duration) for e in events)
    if any(e.pitch != REST and not LOWEST <= e.pitch <= HIGHEST for e in out):
        return None
    return out


def common_key_step(tonic: int) -> int:
    """The smallest shift (-5..+6 semitones) that moves a tonic to C."""
    return -tonic if tonic <= 6 else 12 - tonic


def to_common_key(tune: Tune) -> Tune:
    """The tune with its tonic moved to C by the smallest shift (-5..+6 semitones)."""
    if tune.tonic is None:
        return tune
    moved = shift(tune.events, common_key_step(tune.tonic))
    if moved is None:
        return tune
    return replace(tune, events=moved, tonic=0)


def apply_keys(splits: dict[str, list[Tune]], cfg: TransposeConfig) -> dict[str, list[Tune]]:
    """`common`: every split to C; `augment`: extra shifted copies of train tunes only."""
    if cfg.mode == "common":
        return {name: [to_common_key(t) for t in tunes] for name, tunes in splits.items()}
    if cfg.mode == "augment":
        extra = []
        for tune in splits["train"]:
            for step in range(-cfg.semitones, cfg.semitones + 1):
                moved = shift(tune.events, step) if step else None
                if moved is not None:
                    tonic = None if tune.tonic is None else (tune.tonic + step) % 12
                    extra.append(replace(tune, id=f"{tune.id}{step:+d}", events=moved, tonic=tonic))
        return {**splits, "train": splits["train"] + extra}
    return splits


def windows(ids: Sequence[int], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Every event of one tune as a target with its `length` previous ids (BOS-padded)."""
    padded = np.concatenate([np.full(length, BOS_ID, np.int32), np.asarray(ids, np.int32)])
    idx = np.arange(length)[None, :] + np.arange(len(ids))[:, None]
    return padded[idx], np.asarray(ids, np.int32)


@dataclass(frozen=True)
class EncodedSplit:
    """A split's windows plus, per window, the tune it came from (to resample tunes)."""

    x: np.ndarray
    y: np.ndarray
    tune: np.ndarray
    n_tunes: int
    unknown: int

    @property
    def n_events(self) -> int:
        return len(self.y)


def encode_split(tunes: Sequence[Tune], vocab: Vocabulary, length: int) -> EncodedSplit:
    xs, ys, owner, unknown = [], [], [], 0
    for i, tune in enumerate(tunes):
        enc = vocab.encode(tune.events)
        unknown += enc.unknown
        x, y = windows(enc.ids, length)
        xs.append(x)
        ys.append(y)
        owner.append(np.full(len(y), i, np.int32))
    return EncodedSplit(
        np.concatenate(xs), np.concatenate(ys), np.concatenate(owner), len(tunes), unknown
    )


@dataclass(frozen=True)
class MelodyData:
    """Everything trials share: the split tunes (keys applied) and the train vocabulary.

    Windows depend on the trial's `model.sequence_length` (a searched key), so they are
    encoded per length on first use and kept. `test` tunes are there for generation primers
    and the test read, never for training.
    """

    splits: dict[str, list[Tune]]
    vocab: Vocabulary
    corpus: ParsedCorpus
    #: The config sections the data was made from; a trial that changes them cannot share it.
    settings: str = ""
    _encoded: dict[tuple[str, int], EncodedSplit] = field(default_factory=dict, repr=False)

    def encoded(self, split: str, length: int) -> EncodedSplit:
        if (split, length) not in self._encoded:
            self._encoded[split, length] = encode_split(self.splits[split], self.vocab, length)
        return self._encoded[split, length]

    def split_digest(self, name: str) -> str:
        """Content digest of one split's tunes (ids and events): its Dataset's digest."""
        return self._digest(hashlib.sha256(), (name,))

    @property
    def fingerprint(self) -> str:
        """Identity of the train/valid data a result depends on: tune ids, events, vocab."""
        return self._digest(hashlib.sha256(self.vocab.to_json().encode()), ("train", "valid"))

    def _digest(self, h: hashlib._Hash, splits: tuple[str, ...]) -> str:
        for name in splits:
            for tune in self.splits[name]:
                h.update(tune.id.encode())
                h.update(repr(tune.events).encode())
        return h.hexdigest()[:16]


def data_settings(config: MelodyConfig) -> str:
    """The config sections that decide the data (not the model or the training loop)."""
    return json.dumps(
        {k: config.to_dict()[k] for k in ("corpus", "tokens", "split", "transpose")},
        sort_keys=True,
    )


def melody_splits(config: MelodyConfig, *, progress: bool = True) -> MelodyData:
    """Corpus (cached) -> split -> keys -> train vocabulary."""
    corpus = load_corpus(config.corpus, config.tokens, progress=progress)
    splits = apply_keys(split_tunes(corpus.tunes, config.split), config.transpose)
    vocab = Vocabulary.build((t.events for t in splits["train"]), config.tokens.min_count)
    return MelodyData(splits=splits, vocab=vocab, corpus=corpus, settings=data_settings(config))


def make_dataset(
    split: EncodedSplit, batch_size: int, *, shuffle: bool, seed: int, buffer: int
) -> tf.data.Dataset:
    """(window, next event) batches; train windows are shuffled by seed, every epoch anew."""
    ds = tf.data.Dataset.from_tensor_slices((split.x, split.y))
    if shuffle:
        ds = ds.shuffle(min(buffer, len(split.y)), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
