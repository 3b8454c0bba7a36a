"""The tasks this project knows, by the name a config's `task:` key gives.

The core never imports a task; the command line looks one up here and hands it to the core.
Tasks are imported on demand so that commands which need none (the UI) stay light.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from nsynth_research.core.config import ExperimentConfig, read_yaml
from nsynth_research.core.errors import ConfigError
from nsynth_research.core.task import Task

#: Task name -> ("module:class" of the task, "module:class" of its config schema); the schema
#: alone is cheap to import (no TensorFlow), for commands that only read configs.
TASKS = {
    "instruments": (
        "nsynth_research.instruments.task:InstrumentTask",
        "nsynth_research.instruments.config:InstrumentConfig",
    ),
    "melody": (
        "nsynth_research.melody.task:MelodyTask",
        "nsynth_research.melody.config:MelodyConfig",
    ),
}
#: Configs written before tasks existed name none; they are instrument configs.
DEFAULT_TASK = "instruments"


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _entry(tree: dict[str, Any]) -> tuple[str, str]:
    name = tree.get("task", DEFAULT_TASK)
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError(
            f"task: unknown task {name!r}; expected one of {', '.join(sorted(TASKS))}"
        )
    return TASKS[name]


def task_for(tree: dict[str, Any]) -> Task:
    """The task a (logged or written) run config belongs to; an unknown name lists the
    known ones."""
    return _load(_entry(tree)[0])()


def config_type_for(tree: dict[str, Any]) -> type[ExperimentConfig]:
    """The config schema of a run config's task, without importing the task itself."""
    return _load(_entry(tree)[1])


def task_for_file(path: Path) -> Task:
    """The task of a run-config YAML file (e.g. a study's base_config)."""
    return task_for(read_yaml(path))
