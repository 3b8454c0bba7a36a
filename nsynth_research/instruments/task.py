"""The instrument-family task as the experiment core drives it: NSynth-format data, spectral
features, the CNN, its figures and its scoring, behind the core's `Task` interface."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow

from nsynth_research.core.describe import log_dataset
from nsynth_research.core.errors import UserError
from nsynth_research.core.task import FitResult, Objective, SplitReport
from nsynth_research.core.tracking import log_figure, log_keras_model, open_store
from nsynth_research.instruments.config import InstrumentConfig, load_corpus_config
from nsynth_research.instruments.data.fingerprint import data_fingerprint
from nsynth_research.instruments.data.folds import library_fold, split_test_by_library
from nsynth_research.instruments.data.notes import split_dir
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.evaluation import split_report
from nsynth_research.instruments.features.stats import FeatureStats, load_or_compute_stats
from nsynth_research.instruments.figures import (
    confusion_figure,
    embedding_figure,
    project_embeddings,
)
from nsynth_research.instruments.training import (
    TRANSFER_METRIC,
    PreparedData,
    for_trial,
    predict_split,
    prepare_data,
    train,
)

log = logging.getLogger(__name__)

#: Train statistics saved with every run, so its model can be used without the corpus.
STATS_ARTIFACT = "train_stats.npz"


def run_stats(run_id: str) -> FeatureStats:
    """The train statistics a run was normalised with, from its artifacts."""
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{STATS_ARTIFACT}", dst_path=tmp)
        return FeatureStats.load(Path(path))


class InstrumentTask:
    """Classify the instrument family (11 classes) of a 4 s NSynth note."""

    name = "instruments"
    config_type = InstrumentConfig
    objective = Objective("val_accuracy", "maximize", "validation accuracy")
    #: What a study may optimise (the experiment YAML's `objective`): in-library validation
    #: accuracy, or accuracy on held-out libraries' unheard presets (needs
    #: `data.train_libraries`), the figure that predicts use on other instruments.
    objectives = {  # noqa: RUF012 (read-only table)
        "val_accuracy": objective,
        TRANSFER_METRIC: Objective(TRANSFER_METRIC, "maximize", "cross-library accuracy"),
    }
    #: The data (notes, fold, cache dtype) is prepared once per study, so a trial cannot vary
    #: it: a search space touching it is refused up front. Features are prepared per trial
    #: (`training.for_trial`), so `features.*` is searchable.
    study_fixed_sections = ("data",)
    epoch_metrics = {  # noqa: RUF012 (read-only table)
        "loss": "train_loss",
        "accuracy": "train_accuracy",
        "val_loss": "val_loss",
        "val_accuracy": "val_accuracy",
        TRANSFER_METRIC: TRANSFER_METRIC,
    }

    def ensure_data(self, config: InstrumentConfig, recipe: Path | None) -> None:
        """Render the embedded corpus when the run points at its (still missing) root."""
        from nsynth_research.instruments.corpus.build import render_corpus

        if recipe is None or not Path(recipe).is_file():
            return
        corpus = load_corpus_config(recipe)
        if Path(corpus.root).resolve() != Path(config.data.root).resolve():
            return
        summary = render_corpus(corpus)
        if summary.rendered:
            print(summary.format_table())

    def prepare(self, config: InstrumentConfig, *, progress: bool = True) -> PreparedData:
        return prepare_data(config, progress=progress)

    def fit(
        self,
        config: InstrumentConfig,
        data: PreparedData,
        *,
        callbacks: Sequence[Any] = (),
        verbose: int | str = "auto",
    ) -> FitResult:
        return train(
            config, data, callbacks=callbacks, verbose=verbose, monitor=self.objective.metric
        )

    def log_inputs(self, config: InstrumentConfig, data: PreparedData) -> dict[str, str]:
        data = for_trial(data, config, progress=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / STATS_ARTIFACT
            data.stats.save(path)
            mlflow.log_artifact(str(path))
        # The run table's Dataset column: which notes, by content digest, in which role.
        splits = {"train": (data.train, "training"), "valid": (data.valid, "validation")}
        for split, (notes, role) in splits.items():
            log_dataset(
                f"{data.root.name}/{split}", data.fingerprint, role, len(notes),
                str(split_dir(data.root, split).resolve()),
            )
        return {
            "data_fingerprint": data.fingerprint,
            "corpus_fingerprint": data.corpus_fingerprint,
            "stats_fingerprint": data.stats.fingerprint,
            "data_root": str(data.root),
            "n_train": str(len(data.train)),
            "n_valid": str(len(data.valid)),
            "n_transfer": str(sum(map(len, data.transfer.values()))),
        }

    def log_result(self, config: InstrumentConfig, result: FitResult) -> None:
        valid = result.outputs
        log_figure(
            confusion_figure(valid.labels, valid.predictions, "Validation confusion matrix"),
            "figures/confusion_valid.png",
        )
        if config.tracking.tsne and len(valid.labels) >= 4:
            points = project_embeddings(valid.embeddings, 2, config.seed)
            log_figure(
                embedding_figure(
                    points, valid.labels, "Validation embeddings (PCA 50 -> t-SNE 2-D)"
                ),
                "figures/tsne_valid_2d.png",
            )
        if config.tracking.log_model:
            log_keras_model(result.model)

    def score(
        self, config: InstrumentConfig, model_run_id: str, split: str, *, resamples: int
    ) -> SplitReport:
        """The logged model of `model_run_id` on `split`, refusing changed train/valid data."""
        client = open_store(config.tracking)
        run = client.get_run(model_run_id)
        model_uri = run.data.tags.get("model_uri")
        if not model_uri:
            raise UserError(f"run {model_run_id} logged no model (tracking.log_model was false)")
        root = config.data.root
        logged = run.data.tags.get("corpus_fingerprint")
        if logged != data_fingerprint(root, ("train", "valid")):
            raise UserError(
                f"the data under {root} changed since run {model_run_id} was trained "
                f"(fingerprint {logged}); re-run the sweep on the current data"
            )
        limit = config.data.max_notes_per_split
        libraries = config.data.train_libraries
        fold = library_fold(
            read_split(root, "train", limit=limit),
            read_split(root, "valid", limit=limit),
            libraries,
        )
        stats = load_or_compute_stats(root, fold.train, config.features, progress=False)
        notes = read_split(root, split, limit=limit)
        model = mlflow.keras.load_model(model_uri)
        who = run.data.tags.get("mlflow.runName", model_run_id)
        # With a library fold: the trained libraries' notes, then (as `<split>_cross_*`) the
        # other libraries', each with its own instrument-level interval.
        parts = zip((split, f"{split}_cross"), split_test_by_library(notes, libraries), strict=True)
        reports = [
            split_report(
                predict_split(model, part, stats, config),
                [n.instrument_str for n in part],
                name,
                resamples=resamples,
                seed=config.seed,
                who=who,
                model_uri=model_uri,
            )
            for name, part in (parts if libraries else [(split, tuple(notes))])
            if part
        ]
        report = reports[0]
        for other in reports[1:]:
            # Both headlines first, so the summary shows in- and cross-library side by side.
            report.lines[1:1] = other.lines[:1]
            report.lines.extend(other.lines[1:])
            report.metrics.update(other.metrics)
            for key, value in other.artifacts.items():
                report.artifacts[key if "_cross" in key else f"cross_library/{key}"] = value
        report.tags["data_fingerprint"] = data_fingerprint(root)
        log_dataset(
            f"{Path(root).name}/{split}", data_fingerprint(root, (split,)), split, len(notes),
            str(split_dir(root, split).resolve()),
        )
        return report
