"""MLflow tracking: where runs live, what each run logs, and how a run ends.

The default store is a SQLite file inside `mlruns/` with artifacts beside it (MLflow 3
refuses a bare file store); an `http://` tracking URI works the same. Every run logs its
fully resolved config, code version and data fingerprint, so a run alone is enough to
reproduce it; a run that raises is never left RUNNING.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import keras
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import yaml
from mlflow.entities import Metric, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from nsynth_research.config import RunConfig, TrackingConfig, validate
from nsynth_research.errors import UserError
from nsynth_research.figures import confusion_figure, embedding_figure, project_embeddings
from nsynth_research.stats import FeatureStats
from nsynth_research.training import PreparedData, TrainResult, train

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_ARTIFACT = "config.yaml"
#: Train statistics saved with every run, so its model can be used without the corpus.
STATS_ARTIFACT = "train_stats.npz"
MODEL_NAME = "model"
#: Tag that says how a run ended from the project's point of view (FINISHED, PRUNED, FAILED,
#: INTERRUPTED); MLflow's own status is set to match.
STATE_TAG = "state"


def tracking_uri(cfg: TrackingConfig) -> str:
    if cfg.uri:
        return cfg.uri
    store = Path(cfg.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def open_store(cfg: TrackingConfig) -> MlflowClient:
    """Point MLflow (fluent API and registry) at the configured store and return a client."""
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def experiment_id(cfg: TrackingConfig, client: MlflowClient, name: str | None = None) -> str:
    """Id of the named experiment, created with artifacts beside the SQLite file if new."""
    name = name or cfg.experiment
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if cfg.uri else (Path(cfg.store).resolve() / "artifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        # Another worker created it between our lookup and create.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def git_version() -> dict[str, str]:
    """Commit and dirty flag of the code that produced a run ('unknown' outside a checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    status = git("status", "--porcelain", "--untracked-files=no", "--", "nsynth_research")
    return {"git_commit": commit, "git_dirty": str(bool(status)).lower()}


@contextmanager
def tracked_run(
    cfg: TrackingConfig,
    *,
    run_name: str | None = None,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    pruned: tuple[type[BaseException], ...] = (),
    final_state: str = "FINISHED",
) -> Iterator[mlflow.ActiveRun]:
    """Start a run and always end it with an honest status.

    Exceptions of the `pruned` types end the run KILLED and tagged PRUNED (its curves stay);
    Ctrl-C/SIGTERM ends it FAILED tagged INTERRUPTED; any other error ends it FAILED with the
    error message as a tag. The exception is re-raised in every case.
    """
    client = open_store(cfg)
    exp = experiment_id(cfg, client, experiment)
    run = mlflow.start_run(
        experiment_id=exp,
        run_name=run_name or cfg.run_name,
        parent_run_id=parent_run_id,
        tags={**git_version(), **(tags or {})},
    )
    try:
        yield run
    except BaseException as exc:
        if pruned and isinstance(exc, pruned):
            state, status = "PRUNED", RunStatus.KILLED
        elif isinstance(exc, KeyboardInterrupt | SystemExit):
            state, status = "INTERRUPTED", RunStatus.FAILED
        else:
            state, status = "FAILED", RunStatus.FAILED
        client.set_tag(run.info.run_id, STATE_TAG, state)
        client.set_tag(run.info.run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.end_run(RunStatus.to_string(status))
        raise
    client.set_tag(run.info.run_id, STATE_TAG, final_state)
    mlflow.end_run()


class EpochLogger(keras.callbacks.Callback):
    """Logs each epoch's train/val loss and accuracy to one run, by explicit run id, so curves
    survive a pruned or crashed trial and parallel trials never mix."""

    NAMES: ClassVar[dict[str, str]] = {
        "loss": "train_loss",
        "accuracy": "train_accuracy",
        "val_loss": "val_loss",
        "val_accuracy": "val_accuracy",
    }

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        super().__init__()
        self.client = client
        self.run_id = run_id

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = int(time.time() * 1000)
        metrics = [
            Metric(self.NAMES[k], float(v), now, epoch)
            for k, v in (logs or {}).items()
            if k in self.NAMES
        ]
        lr = self.model.optimizer.learning_rate
        metrics.append(Metric("learning_rate", float(np.asarray(lr)), now, epoch))
        self.client.log_batch(self.run_id, metrics=metrics)


def get_run(client: MlflowClient, run_id: str) -> mlflow.entities.Run:
    """A run by id, or a UserError that says which store was searched."""
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise UserError(
            f"no run {run_id!r} in the tracking store {client.tracking_uri}; copy the id from "
            "the MLflow UI (`make ui`) or pass the store that holds it"
        ) from None


def run_config(client: MlflowClient, run_id: str) -> RunConfig:
    """The resolved config logged with a run: all that is needed to re-create it."""
    get_run(client, run_id)
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{CONFIG_ARTIFACT}")
    except MlflowException:
        raise UserError(
            f"run {run_id} has no {CONFIG_ARTIFACT} artifact, so it cannot be rebuilt "
            "(was it logged by this project?)"
        ) from None
    return validate(yaml.safe_load(text), f"config of run {run_id}")


def run_stats(run_id: str) -> FeatureStats:
    """The train statistics a run was normalised with, from its artifacts."""
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{STATS_ARTIFACT}", dst_path=tmp)
        return FeatureStats.load(Path(path))


def log_inputs(config: RunConfig, data: PreparedData) -> None:
    """Params, the resolved config file, the train statistics and the data identity."""
    mlflow.log_params({k: str(v) for k, v in config.flat().items()})
    mlflow.log_text(config.to_yaml(), CONFIG_ARTIFACT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / STATS_ARTIFACT
        data.stats.save(path)
        mlflow.log_artifact(str(path))
    mlflow.set_tags(
        {
            "data_fingerprint": data.fingerprint,
            "corpus_fingerprint": data.corpus_fingerprint,
            "stats_fingerprint": data.stats.fingerprint,
            "data_root": str(data.root),
            "seed": str(config.seed),
            "n_train": str(len(data.train)),
            "n_valid": str(len(data.valid)),
        }
    )


def log_figure(fig: plt.Figure, path: str) -> None:
    mlflow.log_figure(fig, path)
    plt.close(fig)


def log_result(config: RunConfig, result: TrainResult) -> None:
    """Summary metrics, validation figures and the trained model of the active run."""
    mlflow.log_metrics(
        {
            "best_val_accuracy": result.val_accuracy,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "wall_seconds": result.seconds,
            "train_seconds": result.train_seconds,
            "examples_per_second": result.examples_per_second,
        }
    )
    valid = result.valid
    log_figure(
        confusion_figure(valid.labels, valid.predictions, "Validation confusion matrix"),
        "figures/confusion_valid.png",
    )
    if config.tracking.tsne and len(valid.labels) >= 4:
        points = project_embeddings(valid.embeddings, 2, config.seed)
        log_figure(
            embedding_figure(points, valid.labels, "Validation embeddings (PCA 50 -> t-SNE 2-D)"),
            "figures/tsne_valid_2d.png",
        )
    if config.tracking.log_model:
        log_keras_model(result.model)


def log_keras_model(model: keras.Model) -> str:
    """Log the model with pinned requirements (skips MLflow's slow requirement inference)."""
    import tensorflow as tf
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *model.input_shape[1:]))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, model.output_shape[-1]))]),
    )
    info = mlflow.keras.log_model(
        model,
        name=MODEL_NAME,
        signature=signature,
        pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
    )
    mlflow.set_tag("model_uri", info.model_uri)
    return info.model_uri


@dataclass(frozen=True)
class TrackedResult:
    run_id: str
    result: TrainResult


def tracked_training(
    config: RunConfig,
    data: PreparedData,
    *,
    parent_run_id: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    pruned: tuple[type[BaseException], ...] = (),
    on_start: Callable[[str], None] | None = None,
    verbose: int | str = "auto",
) -> TrackedResult:
    """One training run, logged from its config to its model; the unit the study repeats."""
    with tracked_run(
        config.tracking,
        run_name=run_name,
        experiment=experiment,
        parent_run_id=parent_run_id,
        tags=tags,
        pruned=pruned,
    ) as run:
        run_id = run.info.run_id
        if on_start is not None:
            on_start(run_id)
        log_inputs(config, data)
        logger = EpochLogger(MlflowClient(tracking_uri(config.tracking)), run_id)
        result = train(config, data, callbacks=[logger, *callbacks], verbose=verbose)
        log_result(config, result)
    return TrackedResult(run_id=run_id, result=result)
