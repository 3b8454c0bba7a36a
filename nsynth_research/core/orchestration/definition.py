"""A study's definition, stored with the study, so that two experiment files sharing one
study name cannot mix their trials.

Trials are comparable only if they share what defines the study: the resolved base config
(the objective included), the search space, the sampler, the pruner and the seed baseline.
The study's creator stores that definition and its SHA-256 as Optuna study attributes; every
later sweep, worker and evaluation compares its own and refuses a different one, naming the
keys that differ. Where things are (the tracking store, data folders, caches) is left out:
machines of one study mount them at different paths. The budget (n_trials, timeout_minutes)
is left out too: raising n_trials is how a study is continued.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePath
from typing import Any

import optuna

from nsynth_research.core.config import ExperimentConfig, flatten
from nsynth_research.core.errors import ConfigError
from nsynth_research.core.study_config import StudyConfig

DEFINITION_ATTR = "definition"
DIGEST_ATTR = "definition_sha256"
OBJECTIVE = "training.objective"


def study_definition(study: StudyConfig, base: ExperimentConfig) -> dict[str, Any]:
    """What makes two trials of the study comparable, as plain JSON-able values."""
    config = {
        key: value
        for key, value in flatten(base.model_dump(mode="python")).items()
        if not key.startswith("tracking.") and not isinstance(value, PurePath)
    }
    searched = study.model_dump(
        mode="json", include={"search_space", "sampler", "pruner", "enqueue_baseline"}
    )
    return json.loads(json.dumps({"base": config, **searched}, default=str))


def digest(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def _differences(stored: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    a, b = flatten(stored), flatten(mine)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def check_definition(opt: optuna.Study, study: StudyConfig, base: ExperimentConfig) -> None:
    """Store the definition on a study that has none; refuse one that differs."""
    mine = study_definition(study, base)
    attrs = opt.user_attrs
    stored = attrs.get(DEFINITION_ATTR) or {}
    if mine["base"].get(OBJECTIVE) is None and OBJECTIVE in stored.get("base", {}):
        # A reader that did not bind a task (docs, benchmarks) leaves the objective to the
        # study; a sweep or an evaluation always names the one it compares.
        mine["base"][OBJECTIVE] = stored["base"][OBJECTIVE]
    if DIGEST_ATTR not in attrs:
        if mine["base"].get(OBJECTIVE) is None:
            return  # a reader: the next sweep or evaluation stores the definition
        opt.set_user_attr(DEFINITION_ATTR, mine)
        opt.set_user_attr(DIGEST_ATTR, digest(mine))
        attrs = opt.user_attrs  # another machine may have stored its own meanwhile
    if attrs[DIGEST_ATTR] == digest(mine):
        return
    keys = _differences(attrs.get(DEFINITION_ATTR) or {}, mine) or ["(unknown)"]
    shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
    raise ConfigError(
        f"study {study.name!r} in this storage was created from another definition: {shown} "
        "differ, and its trials would be compared with these as one study. Give this "
        "experiment its own `name` (e.g. name=<new> on the command line), or restore the "
        "definition the study was created with"
    )
