"""The library-held-out fold: train on some sample libraries, score on presets of the others.

A model trained on one small SoundFont learns that SoundFont (SPEC, "Generalisation"); its
accuracy on presets of a library it never trained on is what predicts real-world use. The
rendered corpus records each note's `library` and `sample_group` (presets sharing PCM sample
data, across SoundFonts too). With `data.train_libraries` set, a run trains (and validates in
library) on those libraries only, and its *transfer* notes are the other libraries' train-
and valid-split notes whose sample group holds no training note: presets whose samples the
model never heard. Merlin copies many TimGM6mb samples, so without that rule a "cross-library"
score would partly be memory. The test split is never read here (see `split_test_by_library`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nsynth_research.core.errors import DataError
from nsynth_research.instruments.data.notes import Note, format_listing


@dataclass(frozen=True)
class Fold:
    """The notes one run trains on, validates on in library, and scores transfer on."""

    train: tuple[Note, ...]
    valid: tuple[Note, ...]
    #: Split the notes came from ("train", "valid") -> transfer notes of that split, so each
    #: is read from its split's feature cache. Empty when no libraries are held out.
    transfer: dict[str, tuple[Note, ...]] = field(default_factory=dict)

    @property
    def transfer_notes(self) -> tuple[Note, ...]:
        return tuple(n for split in ("train", "valid") for n in self.transfer.get(split, ()))


def _check_libraries(notes: Sequence[Note], libraries: Sequence[str]) -> None:
    present = sorted({n.library for n in notes})
    if "" in present or any(n.sample_group < 0 for n in notes):
        raise DataError(
            "data.train_libraries needs every note's `library` and `sample_group` (fields of the "
            "rendered corpus's examples.json); this data has none: leave train_libraries empty"
        )
    unknown = sorted(set(libraries) - set(present))
    if unknown:
        raise DataError(
            f"data.train_libraries names {format_listing(unknown)}, not in the data; its "
            f"libraries are {format_listing(present)}"
        )
    if set(libraries) >= set(present):
        raise DataError(
            f"data.train_libraries {list(libraries)} holds every library of the data "
            f"({format_listing(present)}): nothing is left to measure transfer on"
        )


def library_fold(train: Sequence[Note], valid: Sequence[Note], libraries: Sequence[str]) -> Fold:
    """Restrict training and in-library validation to `libraries`; the other libraries'
    sample-disjoint train/valid notes become the transfer set. No libraries: no fold."""
    if not libraries:
        return Fold(tuple(train), tuple(valid))
    _check_libraries([*train, *valid], libraries)
    keep = set(libraries)
    fold_train = tuple(n for n in train if n.library in keep)
    heard = {n.sample_group for n in fold_train}
    transfer = {
        split: tuple(n for n in notes if n.library not in keep and n.sample_group not in heard)
        for split, notes in (("train", train), ("valid", valid))
    }
    fold = Fold(fold_train, tuple(n for n in valid if n.library in keep), transfer)
    if not fold.train or not fold.valid or not fold.transfer_notes:
        raise DataError(
            f"data.train_libraries {list(libraries)}: the fold has {len(fold.train)} train, "
            f"{len(fold.valid)} in-library valid and {len(fold.transfer_notes)} transfer notes; "
            "every part needs some (render more presets or change the libraries)"
        )
    return fold


def split_test_by_library(
    test: Sequence[Note], libraries: Sequence[str]
) -> tuple[tuple[Note, ...], tuple[Note, ...]]:
    """(in-library, cross-library) test notes. Test groups share no sample with any train
    group by the corpus's construction, so every other-library test note is unheard."""
    keep = set(libraries)
    return (
        tuple(n for n in test if n.library in keep),
        tuple(n for n in test if n.library not in keep),
    )
