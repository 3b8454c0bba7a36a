"""MLflow tracking: where runs live and how a run ends.

The default store is a SQLite file inside `mlruns/` with artifacts beside it (MLflow 3
refuses a bare file store), created whole or not at all; an `http://` tracking URI (from the
config or NSYNTH_TRACKING_URI) works the same. A run that raises is never left RUNNING: it
ends FAILED, KILLED (pruned) or INTERRUPTED, with the reason as a tag. A run whose process was
SIGKILLed cannot do that, so every run records its owner process and the next command that
opens the store on that host closes runs whose owner is gone.
"""

from __future__ import annotations

import logging
import os
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
from nsynth_research.core.environment import environment_tags
from nsynth_research.core.errors import MachineError, UserError
from nsynth_research.core.files import create_atomically, disk_full
from nsynth_research.core.interrupts import STOPS
from nsynth_research.core.orchestration import (
    STATE_TAG,
    TRACKING_ENV,
    Owner,
    close_orphaned_runs,
    machine_failure,
)
from nsynth_research.core.plotstyle import SAVE

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "model"
#: Free space a new local store needs: the empty database is ~1 MiB, models and figures more.
STORE_SPACE = 64 * 2**20
_closed_orphans: set[str] = set()


def tracking_uri(cfg: TrackingConfig) -> str:
    """The config's URI, else NSYNTH_TRACKING_URI, else a SQLite store inside `cfg.store`."""
    if cfg.uri:
        return cfg.uri
    if os.environ.get(TRACKING_ENV):
        return os.environ[TRACKING_ENV]
    db = Path(cfg.store).resolve() / "mlflow.db"
    if not db.exists():
        create_atomically(db, _build_mlflow_db, STORE_SPACE, "the MLflow store")
    return f"sqlite:///{db}"


def _build_mlflow_db(path: Path) -> None:
    """Create MLflow's tables in a fresh SQLite file (MLflow does so on first use)."""
    client = MlflowClient(f"sqlite:///{path}")
    client.search_experiments(max_results=1)
    # Release the file before it is linked into place.
    client._tracking_client.store.engine.dispose()


def open_store(cfg: TrackingConfig) -> MlflowClient:
    """Point MLflow (fluent API and registry) at the configured store and return a client.

    The first time a process opens a store, runs left RUNNING by dead processes of this host
    are closed FAILED, so a SIGKILLed command never leaves a run RUNNING for good."""
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    if uri not in _closed_orphans:
        _closed_orphans.add(uri)
        try:
            close_orphaned_runs(client)
        except Exception as exc:  # a read-only or full store is still readable
            log.debug("could not close orphaned runs in %s: %s", uri, exc)
    return client


def check_writable(cfg: TrackingConfig) -> None:
    """Refuse, naming the folder, to start a run in a local store that cannot be written
    (a read-only mount or permissions), before anything is half-logged."""
    uri = tracking_uri(cfg)
    if not uri.startswith("sqlite:"):
        return
    db = Path(uri.removeprefix("sqlite:///"))
    for path in (db, db.parent, db.parent / "artifacts"):
        if path.exists() and not os.access(path, os.W_OK):
            raise UserError(
                f"the MLflow store {db.parent} is read-only ({path} cannot be written); make "
                "it writable or point tracking.store (or NSYNTH_TRACKING_URI) elsewhere"
            )


def experiment_id(cfg: TrackingConfig, client: MlflowClient, name: str | None = None) -> str:
    """Id of the named experiment, created with artifacts beside the SQLite file if new."""
    name = name or cfg.experiment
    if name is None:
        raise ValueError("a run needs an experiment: pass one or set tracking.experiment")
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    # A local store keeps artifacts beside it; a server decides where they live for everyone.
    local = tracking_uri(cfg).startswith("sqlite:")
    location = (Path(cfg.store).resolve() / "artifacts").as_uri() if local else None
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


def code_version() -> dict[str, str]:
    """What made a run, beside its config and data: the commit, and the lock file and main
    package versions of the environment (`environment`), so a run can be re-created later."""
    return {**git_version(), **environment_tags()}


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

    Exceptions of the `pruned` types end the run KILLED and tagged PRUNED, with no error tag
    (its curves stay);
    Ctrl-C/SIGTERM ends it FAILED tagged INTERRUPTED; any other error ends it FAILED with the
    error message as a tag. The exception is re-raised in every case.
    """
    client = open_store(cfg)
    check_writable(cfg)
    exp = experiment_id(cfg, client, experiment)
    run = mlflow.start_run(
        experiment_id=exp,
        run_name=run_name or cfg.run_name,
        parent_run_id=parent_run_id,
        tags={**code_version(), **Owner.me().tags(), **(tags or {})},
    )
    try:
        yield run
        client.set_tag(run.info.run_id, STATE_TAG, final_state)
        mlflow.end_run()
    except BaseException as raised:
        exc = STOPS.surfaced(raised)
        if pruned and isinstance(exc, pruned):
            state, status = "PRUNED", RunStatus.KILLED
        elif isinstance(exc, KeyboardInterrupt | SystemExit):
            state, status = "INTERRUPTED", RunStatus.FAILED
        else:
            state, status = "FAILED", RunStatus.FAILED
        closed = _end_run(client, run.info.run_id, state, status, exc)
        then = "was marked FAILED" if closed else "is closed FAILED by the next command"
        if disk_full(exc):
            where = getattr(exc, "filename", None) or run.info.artifact_uri
            raise MachineError(
                f"the disk is full (writing {where}); run {run.info.run_id} {then}. Free at "
                f"least {STORE_SPACE // 2**20} MiB there (and where the feature cache lives), "
                "then rerun"
            ) from exc
        failure = None
        if isinstance(exc, Exception) and not isinstance(exc, UserError | MachineError):
            failure = machine_failure(exc)
        if failure:
            raise MachineError(f"{failure} (run {run.info.run_id} {then})") from exc
        if exc is not raised:
            raise exc from raised
        raise


def _end_run(
    client: MlflowClient, run_id: str, state: str, status: int, exc: BaseException
) -> bool:
    """End the active run with `state`; False when the store cannot take it (a full disk):
    the run's owner tags then let the next command close it."""
    problems = []
    try:
        client.set_tag(run_id, STATE_TAG, state)
        if state != "PRUNED":  # a pruned run did its job; an `error` tag would read as a crash
            client.set_tag(run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
    except Exception as failed:
        problems.append(failed)
    try:
        mlflow.end_run(RunStatus.to_string(status))  # leaves the active run first, then writes
    except Exception as failed:
        problems.append(failed)
    if problems:
        text = str(problems[0]).strip().splitlines() or [type(problems[0]).__name__]
        log.warning("run %s could not be closed (%s); the next command closes it", run_id, text[0])
    return not problems


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
    """Log a figure cropped to what it draws (legends outside the axes stay whole)."""
    mlflow.log_figure(fig, path, save_kwargs=SAVE)
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
