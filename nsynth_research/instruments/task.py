"""The instrument-family task as the experiment core drives it: NSynth-format data, spectral
features, the CNN, its figures and its scoring, behind the core's `Task` interface."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import mlflow
from mlflow.tracking import MlflowClient

from nsynth_research.core.describe import combine_digests, datasets_note, log_dataset
from nsynth_research.core.task import FitResult, LoggedModel, Objective, SplitReport, Task
from nsynth_research.core.tracking import log_figure, open_store
from nsynth_research.instruments.config import InstrumentConfig, load_corpus_config
from nsynth_research.instruments.data.fingerprint import (
    data_fingerprint,
    notes_fingerprint,
    split_fingerprint,
)
from nsynth_research.instruments.data.folds import library_fold, split_test_by_library
from nsynth_research.instruments.data.notes import Note, split_dir
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
    read_notes,
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


class InstrumentTask(Task[InstrumentConfig]):
    """Classify the instrument family (11 classes) of a 4 s NSynth note."""

    name = "instruments"
    config_type = InstrumentConfig
    objective = Objective("val_accuracy", "maximize", "validation accuracy")
    #: What a study may optimise (the experiment YAML's `objective`): in-library validation
    #: accuracy, or accuracy on held-out libraries' unheard presets (needs
    #: `data.train_libraries`), the figure that predicts use on other instruments.
    objectives: ClassVar[dict[str, Objective]] = {
        "val_accuracy": objective,
        TRANSFER_METRIC: Objective(TRANSFER_METRIC, "maximize", "cross-library accuracy"),
    }
    #: The data (notes, fold, cache dtype) is prepared once per study, so a trial cannot vary
    #: it: a search space touching it is refused up front. Features are prepared per trial
    #: (`training.for_trial`), so `features.*` is searchable.
    study_fixed_sections = ("data",)
    #: The train/valid corpus fingerprint a run's model depends on (notes and audio).
    data_tag = "corpus_fingerprint"
    champion_use = "`make predict AUDIO=...` and `make dream` load it"
    epoch_metrics: ClassVar[dict[str, str]] = {
        "loss": "train_loss",
        "accuracy": "train_accuracy",
        "val_loss": "val_loss",
        "val_accuracy": "val_accuracy",
        TRANSFER_METRIC: TRANSFER_METRIC,
    }

    def ensure_data(self, config: InstrumentConfig) -> None:
        """Render the embedded corpus (`data.corpus`) when the run points at its missing root."""
        from nsynth_research.instruments.corpus.build import render_corpus

        recipe = config.data.corpus
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
        # The run table's Dataset column: which notes, by content digest, in which role. The
        # digests follow the notes only; the front-end is the `features.*` params and the
        # `features` tag, so every trial of a study reads the same three datasets.
        roles = {
            "train": (data.train, "training", ("train",)),
            "valid": (data.valid, "validation", ("valid",)),
            "transfer": (
                tuple(n for notes in data.transfer.values() for n in notes),
                "validation across libraries",
                tuple(split for split, notes in data.transfer.items() if notes),
            ),
        }
        for name, (notes, role, splits) in roles.items():
            if name in data.digests:
                log_dataset(
                    f"{data.root.name}/{name}",
                    data.digests[name],
                    role,
                    len(notes),
                    ", ".join(str(split_dir(data.root, s).resolve()) for s in splits),
                    {"libraries": _libraries(notes)},
                )
        return {
            "data_fingerprint": data.fingerprint,
            "corpus_fingerprint": data.corpus_fingerprint,
            "stats_fingerprint": data.stats.fingerprint,
            "features": _front_end(config),
            "data_root": str(data.root),
            "n_train": str(len(data.train)),
            "n_valid": str(len(data.valid)),
            "n_transfer": str(sum(map(len, data.transfer.values()))),
        }

    def log_result(self, config: InstrumentConfig, result: FitResult) -> None:
        valid = result.outputs
        libraries = config.data.train_libraries
        where = f"in library ({', '.join(libraries)} presets)" if libraries else "all presets"
        log_figure(
            confusion_figure(
                valid.labels, valid.predictions, f"Validation notes, {where}: confusion matrix"
            ),
            "figures/confusion_valid.png",
        )
        if config.figures.tsne and len(valid.labels) >= 4:
            points = project_embeddings(valid.embeddings, 2, config.seed)
            log_figure(
                embedding_figure(
                    points,
                    valid.labels,
                    f"Validation notes, {where}: embeddings (PCA 50 -> t-SNE 2-D)",
                ),
                "figures/tsne_valid_2d.png",
            )
        super().log_result(config, result)

    def data_fingerprint(self, config: InstrumentConfig) -> str:
        return data_fingerprint(config.data.root, ("train", "valid"))

    def score_model(
        self, config: InstrumentConfig, logged: LoggedModel, split: str, *, resamples: int
    ) -> SplitReport:
        """Each scored part of `split` (with a library fold: across and in library, the
        objective's part first), normalised with the statistics of the notes it trained on."""
        client = open_store(config.tracking)
        root = config.data.root
        libraries = config.data.train_libraries
        fold = library_fold(read_notes(config, "train"), read_notes(config, "valid"), libraries)
        stats = load_or_compute_stats(root, fold.train, config.features, progress=False)
        notes = read_notes(config, split)
        parts = scored_parts(notes, split, libraries, Path(root).name, config.training.objective)
        reports, known = [], {split: split_fingerprint(root, split)}
        for name, part, label in parts:
            log_dataset(
                f"{Path(root).name}/{name}",
                notes_fingerprint(root, {split: part}, known),
                split,
                len(part),
                str(split_dir(root, split).resolve()),
                {"libraries": _libraries(part), "notes are": label},
            )
            outputs = predict_split(logged.model, part, stats, config)
            reports.append(
                split_report(
                    outputs,
                    [n.instrument_str for n in part],
                    name,
                    resamples=resamples,
                    seed=config.seed,
                    who=logged.name,
                    model_uri=logged.uri,
                    label=label,
                )
            )
        return merged(reports, client, f"{parts[0][0]}_accuracy")


def _libraries(notes: Sequence[Note]) -> str:
    return ", ".join(sorted({n.library for n in notes if n.library})) or "-"


def _front_end(config: InstrumentConfig) -> str:
    """The front-end settings, in one tag beside the data digest (never inside it)."""
    return json.dumps(config.features.content_key(), sort_keys=True)


def scored_parts(
    notes: Sequence[Note],
    split: str,
    libraries: Sequence[str],
    corpus: str,
    objective: str | None,
) -> list[tuple[str, tuple[Note, ...], str]]:
    """(metric prefix, notes, what they are) of each scored part of `split`, the part the
    study selected on first: with a library fold, the other libraries' presets (none shares
    a sample with a training preset) as `<split>_transfer`, and the trained libraries' own
    presets as `<split>`; without one, the whole split."""
    if not libraries:
        return [(split, tuple(notes), f"on all {corpus} {split} presets")]
    inside, across = split_test_by_library(notes, libraries)
    others = ", ".join(sorted({n.library for n in across}))
    parts = [
        (
            f"{split}_transfer",
            across,
            f"across libraries ({others} {split} presets no training preset shares a sample with)",
        ),
        (split, inside, f"in library ({', '.join(libraries)} {split} presets)"),
    ]
    if objective != TRANSFER_METRIC:
        parts.reverse()
    return [p for p in parts if p[1]]


def merged(reports: list[SplitReport], client: MlflowClient, headline: str) -> SplitReport:
    """One report of the scored parts, the first (the selected metric) leading: both
    accuracies, both macro-F1s, then each part's family table; with the run's datasets."""
    first, *others = reports
    lines = [r.lines[0] for r in reports] + [r.lines[1] for r in reports]
    lines += [line for r in reports for line in r.lines[2:]]
    metrics, artifacts = dict(first.metrics), dict(first.artifacts)
    for other in others:
        metrics.update(other.metrics)
        artifacts.update(other.artifacts)
    run = mlflow.active_run()
    logged = client.get_run(run.info.run_id) if run else None
    inputs = logged.inputs if logged else None  # a fetched run always carries its inputs
    digests = [d.dataset.digest for d in inputs.dataset_inputs] if inputs is not None else []
    return SplitReport(
        metrics=metrics,
        lines=lines,
        model_uri=first.model_uri,
        artifacts=artifacts,
        tags={
            "data_fingerprint": combine_digests(digests),
            "datasets": datasets_note(logged) if logged else "",
            "headline_metric": headline,
        },
    )
