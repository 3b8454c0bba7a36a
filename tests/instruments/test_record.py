"""What the record says about instrument runs: one digest per dataset's notes (train and valid
differ, the front-end never changes them), a run's description, data tag and Datasets
agreeing (a trained run, the study's test evaluation), and the test figure the study selected
on leading, each figure labelled with the notes it was computed on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest

from nsynth_research.core.describe import NOTE_TAG, combine_digests
from nsynth_research.core.selection import champion_note
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.tracking import open_store, tracked_run
from nsynth_research.instruments.config import load_config
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.task import InstrumentTask, scored_parts
from nsynth_research.instruments.training import TRANSFER_METRIC, prepare_data


def note(name: str, library: str) -> Note:
    return Note(name, "", 0, name, 0, 0, 60, 100, library, 0)


TEST = [note("a", "Merlin"), note("b", "TimGM6mb"), note("c", "TimGM6mb")]


def test_the_part_the_study_selected_on_leads_and_says_what_it_is() -> None:
    transfer = scored_parts(TEST, "test", ["Merlin"], "gm", TRANSFER_METRIC)
    assert [(name, len(notes)) for name, notes, _ in transfer] == [
        ("test_transfer", 2),
        ("test", 1),
    ]
    assert transfer[0][2] == (
        "across libraries (TimGM6mb test presets no training preset shares a sample with)"
    )
    assert transfer[1][2] == "in library (Merlin test presets)"
    in_library = scored_parts(TEST, "test", ["Merlin"], "gm", "val_accuracy")
    assert [name for name, _, _ in in_library] == ["test", "test_transfer"]
    (whole,) = scored_parts(TEST, "test", [], "gm", None)
    assert whole[0] == "test" and whole[2] == "on all gm test presets"


@pytest.mark.slow
def test_dataset_digests_follow_the_notes_not_the_front_end(tiny_corpus: Path) -> None:
    net = ["model.first_kernel=[3,3]", "model.kernel=[3,3]", "model.pool_size=[2,2]"]
    small = ["model.filters=[8,8]", "model.dense=[16]", "data.max_notes_per_split=24", *net]
    stft = prepare_data(load_config(None, [f"data.root={tiny_corpus}", *small]), progress=False)
    mel = load_config(None, [f"data.root={tiny_corpus}", *small, "features.kind=logmel"])
    logmel = prepare_data(mel, progress=False)
    assert stft.stats.fingerprint != logmel.stats.fingerprint
    assert stft.digests == logmel.digests and stft.fingerprint == logmel.fingerprint
    assert set(stft.digests) == {"train", "valid"}
    assert stft.digests["train"] != stft.digests["valid"]
    fewer = load_config(None, [f"data.root={tiny_corpus}", *small[:2], *net])
    assert prepare_data(fewer, progress=False).digests != stft.digests  # other notes


def _agree(run) -> None:
    """The run's data tag is its Datasets' digests combined; its description quotes both."""
    digests = [d.dataset.digest for d in run.inputs.dataset_inputs]
    assert digests
    tag = run.data.tags["data_fingerprint"]
    assert tag == combine_digests(digests)
    note = run.data.tags[NOTE_TAG]
    assert f"Data {tag}" in note and all(d in note for d in digests), note


@pytest.mark.slow
def test_a_trained_run_and_its_datasets_agree(tiny_run) -> None:
    config, run_id = tiny_run
    run = open_store(config.tracking).get_run(run_id)
    _agree(run)
    roles = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    data = prepare_data(config, progress=False)
    root = Path(config.data.root).name
    assert roles == {f"{root}/train": data.digests["train"], f"{root}/valid": data.digests["valid"]}
    assert run.data.tags["data_fingerprint"] == data.fingerprint
    assert "features" in run.data.tags  # the front-end, beside the digest


@pytest.mark.slow
def test_the_test_evaluation_leads_with_its_figure_and_agrees_with_its_data(tiny_run) -> None:
    """What `evaluate_study` logs: the task's report on the test split, its tags, and the
    champion note as the run's description."""
    config, run_id = tiny_run
    study = StudyConfig(name="s", search_space={"model.dropout": {"type": "categorical",
                                                                  "choices": [0.0]}})  # fmt: skip
    with tracked_run(config.tracking, run_name="evaluation") as run:
        report = InstrumentTask().score(config, run_id, "test", resamples=50)
        mlflow.set_tags(report.tags)
        best = SimpleNamespace(number=0, value=0.5)
        note = champion_note(study, best, run_id, run.info.run_id, InstrumentTask.objective, report)
        mlflow.set_tag(NOTE_TAG, note)
    logged = open_store(config.tracking).get_run(run.info.run_id)
    _agree(logged)
    root = Path(config.data.root).name
    assert report.lines[0].startswith(f"test accuracy on all {root} test presets: ")
    assert note.startswith(report.lines[0])  # the figure first, then how it was selected
    assert logged.data.tags["headline_metric"] == "test_accuracy"
