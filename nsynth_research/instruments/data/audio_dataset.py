"""Streaming audio: NSynth note files (or notes inside .tar.gz archives) -> decoded 16-bit PCM
as float32, one element per note, in a seeded order that is the same in every process.

Epoch order is drawn by numpy from (seed, epoch number) rather than by `Dataset.shuffle`'s
seed: a tf.data shuffle seed is combined with TensorFlow's global seed, so the same `seed`
would give a different order depending on whether (and to what) some other code set the
global seed. Each new iteration of a dataset is one epoch, as Keras' `fit` iterates it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE
from nsynth_research.instruments.data.audio import iter_audio, load_audio, probe_files
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.families import NUM_CLASSES

#: Element spec of `make_audio_dataset`.
AUDIO_SPEC = (
    tf.TensorSpec([NUM_SAMPLES], tf.float32),
    tf.TensorSpec([], tf.int32),
)

# Independent random streams per (seed, epoch), so the file order, the archive buffer and the
# interleaving of the two never share draws.
_STREAM_FILES, _STREAM_ARCHIVE, _STREAM_CHOICE = 0, 1, 2


def make_audio_dataset(
    notes: Sequence[Note],
    *,
    shuffle: bool,
    seed: int = 0,
    shuffle_buffer: int = 2048,
    positions: bool = False,
) -> tf.data.Dataset:
    """Un-batched (audio [64000] float32, label int32), one element per note.

    With `positions`, the second element is instead the note's index in `notes`, for callers
    that must know which note each audio is (archive notes arrive in archive order).

    Unshuffled, elements follow the note list (notes inside archives follow
    `nsynth.iter_audio`'s order). Shuffled, plain files are fully permuted each epoch (only
    paths are shuffled, so this costs no audio memory); notes inside archives are read
    sequentially, the only affordable way through a .tar.gz, and mixed through a buffer of
    `shuffle_buffer` decoded notes.
    """
    notes = checked_notes(notes)
    if shuffle_buffer < 1:
        raise DataError(f"shuffle buffer must be at least 1, got {shuffle_buffer}")
    files = [i for i, n in enumerate(notes) if not n.in_archive]
    archived = [i for i, n in enumerate(notes) if n.in_archive]
    parts: list[tf.data.Dataset] = []
    if files:
        problems, pcm16 = probe_files([notes[i].path for i in files])
        problems.raise_if_any("the notes to read")
        parts.append(_file_dataset(notes, files, shuffle=shuffle, seed=seed, pcm16=pcm16))
    if archived:
        parts.append(
            _archive_dataset(notes, archived, shuffle=shuffle, seed=seed, buffer=shuffle_buffer)
        )
    if len(parts) == 1:
        ds = parts[0]
    else:
        flags = np.array([int(n.in_archive) for n in notes], np.int64)
        choice = tf.data.Dataset.from_generator(
            _EpochGenerator(
                lambda rng: [rng.permutation(flags) if rng is not None else flags],
                seed,
                _STREAM_CHOICE,
                shuffle,
            ),
            output_signature=tf.TensorSpec([None], tf.int64),
        ).unbatch()
        ds = tf.data.Dataset.choose_from_datasets(parts, choice, stop_on_empty_dataset=False)
    if not positions:
        labels = tf.constant([n.family for n in notes], tf.int32)
        ds = ds.map(lambda audio, i: (audio, tf.gather(labels, i)))
    return ds.apply(tf.data.experimental.assert_cardinality(len(notes)))


class _EpochGenerator:
    """A `from_generator` callable; each call is one pass over the dataset, i.e. one epoch.

    The per-epoch rng depends only on (seed, stream, epoch), so epoch k's order is the same in
    every process, and differs from epoch k+1's.
    """

    def __init__(
        self,
        body: Callable[[np.random.Generator | None], Iterator | list],
        seed: int,
        stream: int,
        shuffle: bool,
    ) -> None:
        self._body, self._seed, self._stream, self._shuffle = body, seed, stream, shuffle
        self._epochs = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> Iterator:
        with self._lock:
            epoch = next(self._epochs)
        rng = np.random.default_rng([self._seed, self._stream, epoch]) if self._shuffle else None
        yield from self._body(rng)


def epoch_order(count: int, *, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Indices 0..count-1: a fresh seeded permutation per epoch, or in order.

    In-graph and stateless (a draw per pass from the seed alone, not TensorFlow's global
    seed, then a stateless shuffle), not a Python generator: a generator is a stateful
    source, and under op determinism tf.data's make_deterministic rewrite then makes every
    parallel map and prefetch of the pipeline sequential (logging `NodeDef mentions
    attribute use_unbounded_threadpool` as it rewrites each map)."""
    if not shuffle:
        return tf.data.Dataset.range(count)
    variant = tf.raw_ops.RandomDatasetV2(
        seed=seed,
        seed2=_STREAM_FILES,
        seed_generator=tf.raw_ops.DummySeedGenerator(),
        output_types=[tf.int64],
        output_shapes=[[]],
        rerandomize_each_iteration=True,
    )
    draws = tf.data.experimental.from_variant(variant, tf.TensorSpec([], tf.int64)).take(1)
    stream = tf.constant(_STREAM_FILES, tf.int64)
    return draws.flat_map(
        lambda draw: tf.data.Dataset.from_tensor_slices(
            tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int64), seed=tf.stack([draw, stream])
            )
        )
    )


def _file_dataset(
    notes: list[Note], indices: list[int], *, shuffle: bool, seed: int, pcm16: list[bool]
) -> tf.data.Dataset:
    """(audio, position in `notes`) for the plain-file notes at `indices`; each file is
    decoded in-graph when it is 16-bit PCM, by the reader otherwise."""
    paths = tf.constant([notes[i].path for i in indices], tf.string)
    where = tf.constant(indices, tf.int32)
    in_graph = tf.constant(pcm16, tf.bool)
    order = epoch_order(len(indices), shuffle=shuffle, seed=seed)

    def decode(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        path, position = tf.gather(paths, i), tf.gather(where, i)
        return tf.cond(
            tf.gather(in_graph, i),
            lambda: _decode_wav(path, position),
            lambda: _decode_soundfile(path, position),
        )

    return order.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _decode_wav(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Read one 16-bit WAV in-graph; a file the reader would refuse fails here, naming its path.

    Longer files are cut to 64000 samples, as `nsynth.load_audio` does.
    """
    audio, rate = tf.audio.decode_wav(tf.io.read_file(path), desired_channels=1)
    samples = tf.shape(audio)[0]
    checks = [
        tf.debugging.Assert(
            tf.equal(rate, SAMPLE_RATE), [f"audio is not {SAMPLE_RATE} Hz:", path, rate]
        ),
        tf.debugging.Assert(
            samples >= NUM_SAMPLES,
            [f"audio is shorter than {NUM_SAMPLES} samples:", path, samples],
        ),
    ]
    with tf.control_dependencies(checks):
        audio = tf.reshape(audio[:NUM_SAMPLES], [NUM_SAMPLES])
    return audio, label


def _decode_soundfile(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Other WAV encodings (24-bit, float) are valid NSynth-format data for the reader, but
    `tf.audio.decode_wav` only reads 16-bit PCM; decode those with the reader itself."""
    audio = tf.numpy_function(lambda p: load_audio(p.decode()), [path], tf.float32, stateful=False)
    return tf.reshape(audio, [NUM_SAMPLES]), label


def _archive_dataset(
    notes: list[Note], indices: list[int], *, shuffle: bool, seed: int, buffer: int
) -> tf.data.Dataset:
    """(audio, position in `notes`) for the archived notes at `indices`, in archive order."""
    wanted = [notes[i] for i in indices]
    where = {note.path: np.int32(i) for note, i in zip(wanted, indices, strict=True)}

    def body(rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, np.int32]]:
        stream = ((audio, where[note.path]) for note, audio in iter_audio(wanted))
        yield from (stream if rng is None else _buffer_shuffle(stream, rng, buffer))

    return tf.data.Dataset.from_generator(
        _EpochGenerator(body, seed, _STREAM_ARCHIVE, shuffle), output_signature=AUDIO_SPEC
    )


def _buffer_shuffle(items: Iterator, rng: np.random.Generator, size: int) -> Iterator:
    """tf.data's shuffle algorithm, on a Python stream: memory is `size` items, not the split."""
    pool: list = []
    for item in items:
        if len(pool) < size:
            pool.append(item)
            continue
        i = int(rng.integers(size))
        yield pool[i]
        pool[i] = item
    for i in rng.permutation(len(pool)):
        yield pool[i]


def checked_notes(notes: Sequence[Note]) -> list[Note]:
    notes = list(notes)
    if not notes:
        raise DataError(
            "no notes to read: the note list is empty; check the data root, the split and "
            "data.max_notes_per_split"
        )
    for note in notes:
        if not 0 <= note.family < NUM_CLASSES:
            raise DataError(
                f"note {note.note_str} ({note.path}) has family label {note.family}, outside "
                f"0..{NUM_CLASSES - 1}"
            )
    return notes
