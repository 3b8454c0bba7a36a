"""What the MLflow UI shows before anyone opens an artifact: descriptions on experiments,
runs and registered models, the datasets a run read, and the searched choices as params.

MLflow renders the `mlflow.note.content` tag as a run's or experiment's description, and a
run's logged inputs as the run table's Dataset column, so a newcomer sees which trial won,
on what data, without configuring a single column. Nothing here knows a task: tasks pass
names, digests and counts in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nsynth_research.core.config import flatten
from nsynth_research.core.study_config import ParamSpec, StudyConfig

if TYPE_CHECKING:  # MLflow is imported where it is used: `make ui` starts without it
    import mlflow
    from mlflow.tracking import MlflowClient

NOTE_TAG = "mlflow.note.content"
#: The experiment type MLflow 3 reads to open an experiment in its Model-training mode
#: rather than its GenAI one (the UI's own "experiment type" setting writes it).
KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
#: MLflow stores a dataset digest in a 36-character column.
DIGEST_LENGTH = 36


def clean_float(value: Any) -> Any:
    """Floats without binary noise (Optuna's 0.0 + 3 * 0.1 is 0.30000000000000004): 10
    significant digits are more than any searched value carries, and the noise would reach
    params, config.yaml and every table."""
    return float(f"{value:.10g}") if isinstance(value, float) else value


def search_params(params: dict[str, Any]) -> dict[str, str]:
    """A trial's searched choices as params (`search.first_conv = band_3x32`), next to the
    expanded config keys, so the run table can show one column per searched dimension."""
    return {f"search.{k}": str(clean_float(v)) for k, v in params.items()}


def set_run_note(client: MlflowClient, run_id: str, text: str) -> None:
    client.set_tag(run_id, NOTE_TAG, text)


def set_experiment_note(client: MlflowClient, experiment_id: str, text: str) -> None:
    """The experiment's description, and its type: model training, never GenAI."""
    client.set_experiment_tag(experiment_id, NOTE_TAG, text)
    client.set_experiment_tag(experiment_id, KIND_TAG, MODEL_TRAINING)


def log_dataset(
    name: str,
    digest: str,
    context: str,
    rows: int,
    source: str,
    tags: dict[str, str] | None = None,
    unit: str = "notes",
) -> None:
    """Log one dataset the active run read, e.g. ("points/train", <content digest>,
    "training", 2412, "/data/points/train"); `context` is its role, `tags` say more
    (where the data came from, what the figure on it means), `unit` what a row is."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset

    # mlflow builds this class when it registers its sources, so no stub declares it; and
    # MetaDataset's abstract `profile` is one it implements (as None) at run time.
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]

    dataset = MetaDataset(  # type: ignore[abstract]
        LocalArtifactDatasetSource(source), name=name, digest=digest[:DIGEST_LENGTH]
    )
    # The row count travels as an input tag: MLflow shows a MetaDataset's profile as empty.
    for attempt in range(3):
        try:
            counted = {unit: str(rows), "unit": unit, **(tags or {})}
            mlflow.log_input(dataset, context=context, tags=counted)
            return
        except mlflow.exceptions.MlflowException as exc:
            # Machines logging one new dataset at once race to insert its row: one wins, and
            # the others' retry finds it (get-or-create under a unique key).
            text = str(exc).lower()
            if attempt == 2 or not ("unique" in text or "duplicate" in text):
                raise


def combine_digests(digests: Iterable[str]) -> str:
    """A run's `data_fingerprint`: one digest over the Dataset digests it logged (in any
    order), so the tag, the description and the Datasets column can be checked together."""
    joined = ";".join(sorted(digests))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def datasets_note(run: mlflow.entities.Run) -> str:
    """The datasets a run logged, as its description quotes them: `name digest (N notes)`."""
    parts = []
    for item in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in item.tags}
        unit = tags.get("unit", "notes")
        count = f" ({tags[unit]} {unit})" if unit in tags else ""
        parts.append(f"{item.dataset.name} {item.dataset.digest}{count}")
    return ", ".join(parts)


def describe_space(spec: ParamSpec) -> str:
    """One line per searched dimension: `categorical: a, b, c` or `float 0.0..0.5 step 0.1`."""
    if spec.type == "categorical":
        choices = spec.choices if isinstance(spec.choices, dict) else spec.choices or []
        return "categorical: " + ", ".join(str(c) for c in choices)
    step = f" step {clean_float(spec.step)}" if spec.step else ""
    scale = " log" if spec.log else ""
    return f"{spec.type} {clean_float(spec.low)}..{clean_float(spec.high)}{step}{scale}"


def study_params(study: StudyConfig) -> dict[str, str]:
    """The study's settings as the parent run's params: length, sampler, pruner, space."""
    settings = study.model_dump(
        mode="json", exclude={"search_space", "overrides", "storage", "name"}
    )
    params = {k: str(clean_float(v)) for k, v in flatten(settings).items()}
    params.update({f"overrides.{k}": str(v) for k, v in flatten(study.overrides).items()})
    params.update({f"space.{k}": describe_space(s) for k, s in study.search_space.items()})
    return params


def study_note(study: StudyConfig, label: str) -> str:
    trials = f"{study.n_trials} trials" if study.n_trials else "trials until the timeout"
    if study.final_fit is None:
        read = "the best trial's own model is then read once on the test split"
    else:
        changed = ", ".join(f"{k}={v}" for k, v in study.final_fit.overrides.items())
        read = (
            f"the best trial's configuration is then fitted once more ({changed}, in a "
            "'final fit' child run) and that model is read once on the test split"
        )
    return (
        f"Study {study.name}: {trials} over {len(study.search_space)} searched choices "
        f"({', '.join(study.search_space)}), each scored by {label} on the validation split; "
        f"{read} (child run 'test evaluation')."
    )


def pruned_note(trial: int, epoch: int, label: str, value: float | None) -> str:
    then = f" ({label} {value:.4f} then)" if value is not None else ""
    return (
        f"Trial {trial}, pruned at epoch {epoch}{then}: the study's pruner judged it behind "
        "earlier trials at that epoch. Not a failure; its curves stay."
    )


def mark_pruned(
    client: MlflowClient,
    run_id: str,
    trial: int,
    epoch: int,
    note: str,
    scored: dict[str, float] | None = None,
) -> None:
    """Name a pruned trial's run so the run table says so (MLflow draws KILLED like a crash),
    log `scored`, the pruned epoch's metrics, under their plain names at that epoch, and end
    its description with the data it read, as a finished run's does."""
    client.set_tag(run_id, "mlflow.runName", f"trial {trial} (pruned at epoch {epoch})")
    client.set_tag(run_id, "pruned_at_epoch", str(epoch))
    run = client.get_run(run_id)
    data = run.data.tags.get("data_fingerprint")
    datasets = datasets_note(run)
    if data:
        note += f" Data {data}" + (f": {datasets}." if datasets else ".")
    set_run_note(client, run_id, note)
    for name, value in (scored or {}).items():
        client.log_metric(run_id, name, value, step=epoch)
