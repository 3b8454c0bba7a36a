"""The study: Optuna proposes configs, each trial is one tracked training run scored on the
validation split, and the parent MLflow run collects the study's figures and table.

The study drives training (never the reverse) and never touches the test split: that is
`evaluation`'s single job, after selection. Storage is resumable: rerunning a sweep
continues the same study, and trials left RUNNING by a killed process are failed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import matplotlib.pyplot as plt
import optuna
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState
from optuna_integration.keras import KerasPruningCallback

from nsynth_research.config import (
    ParamSpec,
    RunConfig,
    StudyConfig,
    flatten,
    load_config,
    set_dotted,
    validate,
)
from nsynth_research.errors import ConfigError, UserError
from nsynth_research.tracking import (
    STATE_TAG,
    experiment_id,
    open_store,
    tracked_training,
    tracking_uri,
)
from nsynth_research.training import PreparedData, prepare_data

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
STUDY_TAG = "study"
TRIAL_TAG = "trial_number"
#: Seconds between Optuna heartbeats; a trial silent for GRACE seconds was killed.
HEARTBEAT = 20
GRACE = 60


# ----------------------------------------------------------------------------- configs


def base_config(study: StudyConfig) -> RunConfig:
    """The run config every trial starts from; trials log to the study's MLflow experiment."""
    extra: dict[str, Any] = {}
    for key, value in flatten(study.overrides).items():
        set_dotted(extra, key, value)
    extra = {
        **extra,
        "tracking": {**extra.get("tracking", {}), "experiment": study_experiment(study)},
    }
    return load_config(study.base_config, extra=extra)


def study_experiment(study: StudyConfig) -> str:
    return f"study-{study.name}"


def encode_choice(value: Any) -> Any:
    """Optuna stores only scalars as categorical choices; lists travel as JSON strings."""
    return (
        value if value is None or isinstance(value, bool | int | float | str) else json.dumps(value)
    )


def decode_choice(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def param_overrides(space: dict[str, ParamSpec], params: dict[str, Any]) -> dict[str, Any]:
    """Trial params -> dotted config overrides (bundled choices expand to all their keys)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        spec = space[name]
        if isinstance(spec.choices, dict):
            out.update(flatten(spec.choices[value]) if value in spec.choices else {})
        else:
            out[name] = decode_choice(value)
    return out


def trial_config(base: RunConfig, space: dict[str, ParamSpec], params: dict[str, Any]) -> RunConfig:
    tree = base.to_dict()
    for key, value in param_overrides(space, params).items():
        set_dotted(tree, key, value)
    return validate(tree, "trial config")


def check_search_space(study: StudyConfig, base: RunConfig) -> None:
    """Every searched key must be a real config key and every choice must validate alone."""
    known = set(base.flat())
    for name, spec in study.search_space.items():
        bundles = spec.choices if isinstance(spec.choices, dict) else None
        keys = {k for b in bundles.values() for k in flatten(b)} if bundles else {name}
        for key in sorted(keys - known):
            raise ConfigError(f"search_space.{name}: {key!r} is not a config key")
        if bundles:
            probes = list(bundles)
        elif spec.type == "categorical":
            probes = [encode_choice(c) for c in spec.choices or ()]
        else:
            probes = [spec.low, spec.high]
        for probe in probes:
            value = int(probe) if spec.type == "int" else probe
            try:
                trial_config(base, study.search_space, {name: value})
            except ConfigError as exc:
                raise ConfigError(f"search_space.{name} choice {probe!r}: {exc}") from None


def baseline_params(study: StudyConfig, base: RunConfig) -> dict[str, Any]:
    """The search-space point that is the base config itself, to enqueue as trial 0."""
    flat = base.flat()
    params: dict[str, Any] = {}
    for name, spec in study.search_space.items():
        if isinstance(spec.choices, dict):
            match = [
                label
                for label, bundle in spec.choices.items()
                if all(flat[k] == v for k, v in flatten(bundle).items())
            ]
            if not match:
                raise ConfigError(
                    f"search_space.{name}: no choice matches the base config, so the baseline "
                    "cannot be enqueued; add it or set enqueue_baseline: false"
                )
            params[name] = match[0]
        elif spec.type == "categorical":
            encoded = [encode_choice(c) for c in spec.choices or ()]
            value = encode_choice(flat[name])
            if value not in encoded:
                raise ConfigError(
                    f"search_space.{name}: base value {flat[name]!r} is not among the choices, "
                    "so the baseline cannot be enqueued; add it or set enqueue_baseline: false"
                )
            params[name] = value
        else:
            params[name] = flat[name]
    return params


def suggest(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            choices = list(spec.choices) if isinstance(spec.choices, dict) else spec.choices
            params[name] = trial.suggest_categorical(
                name, [encode_choice(c) for c in choices or ()]
            )
        elif spec.type == "int":
            step = int(spec.step or 1)
            params[name] = trial.suggest_int(
                name, int(spec.low), int(spec.high), step=step, log=spec.log
            )
        else:
            params[name] = trial.suggest_float(
                name, spec.low, spec.high, step=spec.step, log=spec.log
            )
    return params


# ----------------------------------------------------------------------------- storage


def storage_url(study: StudyConfig, base: RunConfig) -> str:
    if study.storage:
        return study.storage
    store = Path(base.tracking.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'optuna.db'}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """RDB storage with heartbeats, so a trial whose process was killed is failed later."""
    with warnings.catch_warnings():
        # Heartbeats are flagged experimental; they are what fails a killed worker's trial.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _rdb_storage(url)


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=HEARTBEAT,
        grace_period=GRACE,
        heartbeat_stale_trial_callback=close_failed_trial_run,
        engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
    )


def make_sampler(study: StudyConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    seed = study.sampler.seed + worker
    if study.sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=study.sampler.n_startup_trials)


def make_pruner(study: StudyConfig) -> optuna.pruners.BasePruner:
    p = study.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.NopPruner()


def load_study(study: StudyConfig, base: RunConfig, worker: int = 0) -> optuna.Study:
    return optuna.create_study(
        study_name=study.name,
        storage=open_storage(storage_url(study, base)),
        direction="maximize",
        sampler=make_sampler(study, worker),
        pruner=make_pruner(study),
        load_if_exists=True,
    )


def close_failed_trial_run(study: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat callback: a trial whose process died leaves its MLflow run FAILED too."""
    run_id = trial.user_attrs.get(RUN_ATTR)
    uri = trial.user_attrs.get("mlflow_tracking_uri")
    if not run_id or not uri:
        return
    client = MlflowClient(uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, STATE_TAG, "FAILED")
        client.set_tag(run_id, "error", "the process running this trial died (no heartbeat)")
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class StudyContext:
    """What a worker needs to run trials: the study config, base config, data and parent."""

    study: StudyConfig
    base: RunConfig
    data: PreparedData
    parent_run_id: str


class _RunIdRecorder:
    """Stores the MLflow run id on the trial as soon as the run starts, so a trial killed
    mid-training can still have its run closed by the heartbeat callback."""

    def __init__(self, trial: optuna.Trial, uri: str) -> None:
        self.trial, self.uri = trial, uri

    def __call__(self, run_id: str) -> None:
        self.trial.set_user_attr(RUN_ATTR, run_id)
        self.trial.set_user_attr("mlflow_tracking_uri", self.uri)


class _EpochProgress(keras.callbacks.Callback):
    """One log line per epoch, naming the trial, so a long sweep shows where it is."""

    def __init__(self, trial: int, epochs: int) -> None:
        super().__init__()
        self.trial, self.epochs = trial, epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        log.info(
            "trial %d epoch %d/%d: train loss %.3f, val accuracy %.4f",
            self.trial,
            epoch + 1,
            self.epochs,
            logs.get("loss", float("nan")),
            logs.get("val_accuracy", float("nan")),
        )


def objective(ctx: StudyContext, trial: optuna.Trial, worker: int = 0) -> float:
    params = suggest(trial, ctx.study.search_space)
    config = trial_config(ctx.base, ctx.study.search_space, params)
    tracked = tracked_training(
        config,
        ctx.data,
        parent_run_id=ctx.parent_run_id,
        experiment=study_experiment(ctx.study),
        run_name=f"trial {trial.number}",
        tags={STUDY_TAG: ctx.study.name, TRIAL_TAG: str(trial.number), "worker": str(worker)},
        callbacks=[
            _EpochProgress(trial.number, config.training.epochs),
            KerasPruningCallback(trial, "val_accuracy"),
        ],
        pruned=(optuna.TrialPruned,),
        on_start=_RunIdRecorder(trial, tracking_uri(config.tracking)),
        verbose=0,
    )
    r = tracked.result
    trial.set_user_attr("epochs_run", r.epochs_run)
    trial.set_user_attr("wall_seconds", round(r.seconds, 2))
    log.info(
        "trial %d: val accuracy %.4f in %d epochs (%.0f s)",
        trial.number,
        r.val_accuracy,
        r.epochs_run,
        r.seconds,
    )
    return r.val_accuracy


def parent_run(study: StudyConfig, base: RunConfig, opt: optuna.Study) -> str:
    """The study's one parent run: created on first use, reopened when a sweep resumes."""
    client = open_store(base.tracking)
    run_id = opt.user_attrs.get(PARENT_ATTR)
    if run_id:
        client.update_run(run_id, status="RUNNING")
        return run_id
    exp = experiment_id(base.tracking, client, study_experiment(study))
    run = client.create_run(
        exp,
        run_name=f"study {study.name}",
        tags={STUDY_TAG: study.name, "role": "study", "optuna_storage": storage_url(study, base)},
    )
    run_id = run.info.run_id
    opt.set_user_attr(PARENT_ATTR, run_id)
    client.log_text(run_id, study.model_dump_json(indent=2), "study.json")
    client.log_text(run_id, base.to_yaml(), "base_config.yaml")
    return run_id


def remaining_trials(study: StudyConfig, opt: optuna.Study) -> int | None:
    if study.n_trials is None:
        return None
    done = [t for t in opt.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return max(0, study.n_trials - len(done))


def run_worker(ctx: StudyContext, worker: int, deadline: float | None) -> None:
    """Optimise until the study has n_trials finished trials or the deadline passes."""
    opt = load_study(ctx.study, ctx.base, worker)
    callbacks = []
    if ctx.study.n_trials is not None:
        # Trials other workers are running count too: otherwise each worker that finishes a
        # trial just before the last one ends starts another, overshooting n_trials.
        callbacks.append(
            optuna.study.MaxTrialsCallback(
                ctx.study.n_trials,
                states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
            )
        )
    left = remaining_trials(ctx.study, opt)
    if left == 0:
        return
    timeout = None if deadline is None else max(1.0, deadline - time.time())
    opt.optimize(
        lambda trial: objective(ctx, trial, worker),
        n_trials=left,
        timeout=timeout,
        callbacks=callbacks,
        catch=(UserError,),
    )


def prepare_study(study: StudyConfig) -> tuple[RunConfig, optuna.Study, str]:
    """Validate the search space, open the study, enqueue the baseline once, open the parent."""
    base = base_config(study)
    check_search_space(study, base)
    opt = load_study(study, base)
    if study.enqueue_baseline and not opt.trials and not opt.user_attrs.get("baseline_enqueued"):
        opt.enqueue_trial(baseline_params(study, base), user_attrs={"baseline": True})
        opt.set_user_attr("baseline_enqueued", True)
    return base, opt, parent_run(study, base, opt)


def spawn_workers(
    experiment_path: Path, workers: int, deadline: float | None, overrides: list[str]
) -> list[subprocess.Popen]:
    """Start workers 1..n-1 as processes beside this one, all on the same study storage."""
    procs = []
    for worker in range(1, workers):
        cmd = [
            sys.executable,
            "-m",
            "nsynth_research",
            "sweep-worker",
            "--experiment",
            str(experiment_path),
            "--worker",
            str(worker),
            "--workers",
            str(workers),
        ]
        if deadline is not None:
            cmd += ["--deadline", repr(deadline)]
        procs.append(subprocess.Popen([*cmd, *overrides]))
    return procs


def limit_threads(workers: int) -> None:
    """Split the machine's cores between worker processes instead of oversubscribing them."""
    import tensorflow as tf

    threads = max(1, (os.cpu_count() or 1) // workers)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(2, threads))


def worker_main(study: StudyConfig, worker: int, workers: int, deadline: float | None) -> None:
    """Entry point of a spawned worker: same study, its own sampler seed."""
    limit_threads(workers)
    base = base_config(study)
    opt = load_study(study, base, worker)
    parent = opt.user_attrs.get(PARENT_ATTR)
    if not parent:
        raise UserError(f"study {study.name!r} has no parent run yet; start it with `sweep`")
    data = prepare_data(base, progress=False)
    run_worker(StudyContext(study, base, data, parent), worker, deadline)


@dataclass(frozen=True)
class SweepOutcome:
    study: optuna.Study
    base: RunConfig
    parent_run_id: str
    seconds: float


def run_sweep(
    study: StudyConfig,
    experiment_path: Path,
    *,
    workers: int = 1,
    overrides: list[str] | None = None,
) -> SweepOutcome:
    """Run (or resume) the study with `workers` processes, then log its artifacts."""
    start = time.perf_counter()
    if workers > 1:
        limit_threads(workers)
    base, opt, parent = prepare_study(study)
    data = prepare_data(base)
    log.info(
        "study %s: %d train / %d valid notes; %s trials so far",
        study.name,
        len(data.train),
        len(data.valid),
        len(opt.trials),
    )
    deadline = None if study.timeout_minutes is None else time.time() + 60 * study.timeout_minutes
    procs = spawn_workers(experiment_path, workers, deadline, overrides or [])
    client = open_store(base.tracking)
    try:
        run_worker(StudyContext(study, base, data, parent), 0, deadline)
        for proc in procs:
            if proc.wait() != 0:
                raise UserError(f"sweep worker {proc.args[6]} exited with code {proc.returncode}")
    except BaseException:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        client.set_tag(parent, STATE_TAG, "INTERRUPTED")
        client.set_terminated(parent, RunStatus.to_string(RunStatus.KILLED))
        raise
    opt = load_study(study, base)
    log_study_artifacts(opt, base, parent)
    client.set_tag(parent, STATE_TAG, "FINISHED")
    client.set_terminated(parent, RunStatus.to_string(RunStatus.FINISHED))
    return SweepOutcome(opt, base, parent, time.perf_counter() - start)


# ----------------------------------------------------------------------------- reporting


def trials_table(opt: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in opt.trials:
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "val_accuracy": t.value,
                "epochs": t.user_attrs.get("epochs_run", len(t.intermediate_values)),
                "seconds": t.user_attrs.get("wall_seconds"),
                "baseline": bool(t.user_attrs.get("baseline")),
                "mlflow_run_id": t.user_attrs.get(RUN_ATTR),
                **{f"param.{k}": v for k, v in t.params.items()},
            }
        )
    return rows


def log_study_artifacts(opt: optuna.Study, base: RunConfig, parent_run_id: str) -> None:
    """Optimisation history, importances, parallel coordinates, slices and the trial table."""
    import pandas as pd
    from optuna.visualization import matplotlib as ovm

    client = open_store(base.tracking)
    table = pd.DataFrame(trials_table(opt))
    client.log_text(parent_run_id, table.to_csv(index=False), "trials.csv")
    client.log_text(parent_run_id, table.to_html(index=False, na_rep=""), "trials.html")
    complete = [t for t in opt.trials if t.state == TrialState.COMPLETE]
    plots = {
        "optimization_history": ovm.plot_optimization_history,
        "parallel_coordinate": ovm.plot_parallel_coordinate,
        "slice": ovm.plot_slice,
        "intermediate_values": ovm.plot_intermediate_values,
    }
    if len(complete) >= 2 and any(
        len({str(t.params.get(k)) for t in complete}) > 1 for k in opt.best_params
    ):
        plots["param_importances"] = ovm.plot_param_importances
    for name, plot in plots.items():
        with warnings.catch_warnings():
            # Optuna flags its matplotlib plots experimental and its axes defeat tight_layout's
            # check; neither changes the picture.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            try:
                ax = plot(opt)
            except (ValueError, RuntimeError) as exc:  # e.g. too few trials for the plot
                log.warning("skipped study plot %s: %s", name, exc)
                continue
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            width, height = fig.get_size_inches()
            fig.set_size_inches(max(width, 9), max(height, 5))
            fig.tight_layout()
        client.log_figure(parent_run_id, fig, f"figures/{name}.png")
        plt.close(fig)
    states = [t.state for t in opt.trials]
    metrics = {
        "trials_complete": states.count(TrialState.COMPLETE),
        "trials_pruned": states.count(TrialState.PRUNED),
        "trials_failed": states.count(TrialState.FAIL),
    }
    if complete:
        metrics["best_val_accuracy"] = opt.best_value
        client.set_tag(parent_run_id, "best_trial", str(opt.best_trial.number))
        client.set_tag(parent_run_id, "best_run_id", str(opt.best_trial.user_attrs.get(RUN_ATTR)))
    for key, value in metrics.items():
        client.log_metric(parent_run_id, key, value)
