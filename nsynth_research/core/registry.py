"""Where a study's champion goes after its test read: its figures and tables logged into
the evaluation run, and its model registered under the study's name with the `champion`
alias (`study_config.champion_uri`), which the task's tools load by default."""

from __future__ import annotations

import json
from typing import Any

import matplotlib.pyplot as plt
import mlflow
from optuna.trial import FrozenTrial

from nsynth_research.core.study_config import (
    CHAMPION_ALIAS,
    StudyConfig,
    champion_name,
    champion_uri,
)
from nsynth_research.core.tracking import log_figure


def log_artifacts(artifacts: dict[str, Any]) -> None:
    """Figures as PNGs, data frames as MLflow tables (shown as tables in the UI), dicts as
    JSON, anything else as text, into the active run."""
    for path, value in artifacts.items():
        if isinstance(value, plt.Figure):
            log_figure(value, path)
        elif hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame
            mlflow.log_table(value, path)
        elif isinstance(value, dict | list):
            mlflow.log_text(json.dumps(value, indent=2), path)
        else:
            mlflow.log_text(str(value), path)


def register_champion(
    client: Any,
    study: StudyConfig,
    best: FrozenTrial,
    best_run: str,
    model_uri: str,
    *,
    note: str = "",
    use: str = "",
) -> str:
    """Register the champion's model under the study's name with the `champion` alias; the
    version carries the evaluation's description and run ids as tags."""
    name = champion_name(study.name)
    evaluation = mlflow.active_run()
    tags = {"trial": str(best.number), "run_id": best_run, "selected_value": f"{best.value:.4f}"}
    if evaluation is not None:
        tags["evaluation_run_id"] = evaluation.info.run_id
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
    if note:
        client.update_model_version(name, version.version, description=note)
    client.update_registered_model(
        name,
        description=(
            f"Champion models of study {study.name}: each version is the study's best trial "
            f"by validation, scored once on the test split. @{CHAMPION_ALIAS} is the latest"
            + (f"; {use}." if use else ".")
        ),
    )
    mlflow.set_tag("registered_model", f"{name}@{CHAMPION_ALIAS} (version {version.version})")
    return champion_uri(study.name)
