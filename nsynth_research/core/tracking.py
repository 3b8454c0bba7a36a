"""MLflow tracking: where runs live and how a run ends.

The default store is a SQLite file inside `mlruns/` with artifacts beside it (MLflow 3
refuses a bare file store); an `http://` tracking URI works the same. A run that raises is
never left RUNNING: it ends FAILED, KILLED (pruned) or INTERRUPTED, with the reason as a tag.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import mlflow
import numpy as np
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.errors import UserError

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
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


def get_run(client: MlflowClient, run_id: str) -> mlflow.entities.Run:
    """A run by id, or a UserError that says which store was searched."""
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise UserError(
            f"no run {run_id!r} in the tracking store {client.tracking_uri}; copy the id from "
            "the MLflow UI (`make ui`) or pass the store that holds it"
        ) from None


def log_figure(fig: plt.Figure, path: str) -> None:
    mlflow.log_figure(fig, path)
    plt.close(fig)


def log_keras_model(model: keras.Model) -> str:
    """Log the model with pinned requirements (skips MLflow's slow requirement inference)."""
    import keras
    import tensorflow as tf
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(model.inputs[0].dtype), (-1, *model.input_shape[1:]))]),
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
