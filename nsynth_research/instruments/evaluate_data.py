"""Scoring any logged instrument model on any NSynth-format split: a rendered corpus from
another seed or SoundFont, the official `nsynth-test.jsonwav.tar.gz`, or a folder of
NSynth-named WAVs without examples.json.

This is how generalisation is measured (a model that learnt one SoundFont scores far lower on
another), so it gives the same report as the study's test read: accuracy and macro-F1 with
instrument-level intervals, per-family rows, confusion matrix, t-SNE. It is logged as its own
run, linked to the model's run and tagged with the data's content fingerprint. It is *not* the
study's test read: the test split the model's study holds out is refused here, unless the
study already spent its read, in which case that logged evaluation is shown instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.describe import (
    NOTE_TAG,
    combine_digests,
    datasets_note,
    log_dataset,
    set_experiment_note,
)
from nsynth_research.core.errors import DataError, UserError
from nsynth_research.core.runs import run_config
from nsynth_research.core.selection import (
    EVALUATED_TAG,
    SUMMARY_ARTIFACT,
    log_artifacts,
    logged_evaluation,
)
from nsynth_research.core.task import with_objective
from nsynth_research.core.tracking import get_run, open_store, tracked_run
from nsynth_research.core.trial import STUDY_TAG
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.data.fingerprint import notes_fingerprint, split_fingerprint
from nsynth_research.instruments.data.notes import split_dir
from nsynth_research.instruments.data.overlap import check_no_test_notes
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.evaluation import split_report
from nsynth_research.instruments.predict import resolve_run
from nsynth_research.instruments.task import InstrumentTask, run_stats
from nsynth_research.instruments.training import predict_split

#: MLflow experiment that holds evaluations on data of the user's choosing.
EXPERIMENT = "data-evaluations"
EXPERIMENT_NOTE = (
    "Logged models scored on NSynth-format data of the user's choosing (`make evaluate "
    "DATA=...`): one run a model and split, its description leading with the accuracy and its "
    "interval over instruments, its Dataset the notes scored. No study's test read is here: "
    "each study's single test evaluation is a child run of that study."
)


@dataclass(frozen=True)
class DataScore:
    """What `evaluate_data` did: a new evaluation run, or the study's own test read shown."""

    run_id: str
    model_run_id: str
    lines: list[str]
    #: True when the split was the study's test split and its logged evaluation is shown.
    reused: bool = False


def evaluate_data(
    model: str,
    root: Path,
    split: str,
    tracking: TrackingConfig,
    *,
    resamples: int = 2000,
) -> DataScore:
    """Score `model` (run id, runs:/ or models:/ URI) on `split` of the data under `root`."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"DATA={root} does not exist; point it at an NSynth-format data root")
    client = open_store(tracking)
    model_run = resolve_run(client, model)
    run = get_run(client, model_run)
    model_uri = run.data.tags.get("model_uri")
    if not model_uri:
        raise UserError(f"run {model_run} logged no model (tracking.log_model was false)")
    fingerprint = split_fingerprint(root, split)
    held_out = _study_test_split(run.data.tags.get("data_root"), fingerprint)
    if held_out:
        return _study_read(client, run, root, split)
    check_no_test_notes(run.data.tags.get("data_root"), root, split)  # a near-copy of it
    notes = read_split(root, split)
    config = run_config(client, model_run, InstrumentConfig)
    outputs = predict_split(mlflow.keras.load_model(model_uri), notes, run_stats(model_run), config)
    who = run.data.tags.get("mlflow.runName", model_run)
    libraries = ", ".join(sorted({n.library for n in notes if n.library}))
    label = f"on {root.name}/{split}" + (f" ({libraries} presets)" if libraries else "")
    report = split_report(
        outputs,
        [n.instrument_str for n in notes],
        split,
        resamples=resamples,
        seed=config.seed,
        who=who,
        model_uri=model_uri,
        label=label,
    )
    lines = [f"model {model} (run {model_run}) on {root} split {split}:", *report.lines]
    digest = notes_fingerprint(root, {split: notes}, {split: fingerprint})
    data = combine_digests([digest])
    with tracked_run(
        tracking,
        run_name=f"{who} on {root.name}/{split}",
        experiment=EXPERIMENT,
        tags={
            "role": "data_evaluation",
            "evaluated_run_id": model_run,
            "model": model,
            "data_root": str(root.resolve()),
            "data_split": split,
            "data_fingerprint": data,
            "split_fingerprint": fingerprint,
            "model_data_root": run.data.tags.get("data_root", ""),
        },
    ) as logged:
        log_dataset(
            f"{root.name}/{split}",
            digest,
            "evaluation",
            len(notes),
            str(split_dir(root, split).resolve()),
            {"libraries": libraries or "-"},
        )
        mlflow.log_metrics(report.metrics)
        log_artifacts(report.artifacts)
        mlflow.log_text("\n".join(lines) + "\n", SUMMARY_ARTIFACT)
        set_experiment_note(client, logged.info.experiment_id, EXPERIMENT_NOTE)
        datasets = datasets_note(client.get_run(logged.info.run_id))
        mlflow.set_tag(
            NOTE_TAG,
            f"{report.lines[0]}. Model {who} (run {model_run}), scored on data the user chose; "
            f"not a study's test read. Data {data}: {datasets}.",
        )
    return DataScore(logged.info.run_id, model_run, lines)


def _study_test_split(model_root: str | None, fingerprint: str) -> bool:
    """True when the split holds the same data as the test split of the model's corpus."""
    if not model_root:
        return False
    try:
        return split_fingerprint(model_root, "test") == fingerprint
    except DataError:
        return False  # the model's corpus is gone or has no test split: nothing to protect


def _study_read(client, run, root: Path, split: str) -> DataScore:
    """The study's logged test read, or a refusal when the study has not made it."""
    model_run = run.info.run_id
    study = run.data.tags.get(STUDY_TAG)
    parent = run.data.tags.get("mlflow.parentRunId")
    evaluated = get_run(client, parent).data.tags.get(EVALUATED_TAG) if parent else None
    if not evaluated:
        owner = f"study {study!r}" if study else "the corpus it was trained on"
        raise UserError(
            f"{root} split {split} is the test split of {owner} (model run {model_run}); it "
            "is read once, by `make evaluate EXPERIMENT=<the study>` after the study, not "
            "by DATA=. Score another corpus or split, or run the study's evaluation first"
        )
    reads = int(get_run(client, parent).data.tags.get("test_reads", "1"))
    # The champion was selected on the objective its config names, not the task's default.
    metric = run_config(client, model_run, InstrumentConfig).training.objective
    objective = with_objective(InstrumentTask(), metric).objective
    evaluation = logged_evaluation(client, evaluated, objective, reads)
    lines = [
        f"{root} split {split} is the test split of study {study!r}: not read again; its "
        f"single evaluation (run {evaluation.run_id}, trial {evaluation.trial}, "
        f"{evaluation.state}) reported:",
        *(evaluation.lines or ["(no summary logged)"]),
    ]
    return DataScore(evaluation.run_id, model_run, lines, reused=True)
