"""The command line: a bad objective or worker count is one line naming it, trial interrupts
leave only the command's own line, without importing having changed logging, and the Makefile
passes paths with spaces whole."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from nsynth_research.cli import main
from nsynth_research.core.errors import UserError
from nsynth_research.core.trial import (
    OPTUNA_TRIAL_LOGGER,
    QuietInterrupts,
    quiet_trial_interrupts,
)

REPO = Path(__file__).resolve().parents[1]
OFFERED = "it offers val_accuracy, val_transfer_accuracy"


@pytest.fixture
def trial_logger(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    """Optuna's trial logger with no filters, restored afterwards (the commands install one)."""
    logger = logging.getLogger(OPTUNA_TRIAL_LOGGER)
    monkeypatch.setattr(logger, "filters", [])
    return logger


def test_train_refuses_an_objective_the_task_does_not_offer(capsys) -> None:
    config = REPO / "configs" / "baseline.yaml"
    code = main(["train", "--config", str(config), "training.objective=test_accuracy"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: training.objective: 'test_accuracy' is not an objective of task "
        f"'instruments'; {OFFERED}"
    ]


def test_a_study_objective_is_refused_by_the_key_it_was_given_as(
    tmp_path: Path, capsys, trial_logger: logging.Logger
) -> None:
    study = {
        "name": "bad",
        "base_config": str(REPO / "configs" / "baseline.yaml"),
        "objective": "val_loss",
        "search_space": {"model.dropout": {"type": "categorical", "choices": [0.0]}},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["sweep", "--experiment", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: objective: 'val_loss' is not an objective of task 'instruments'; {OFFERED}"
    ]
    # The sweep command installed the one-line filter as it started, once however often run.
    assert main(["sweep", "--experiment", str(path)]) == 2
    assert [type(f) for f in trial_logger.filters] == [QuietInterrupts]


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_a_sweep_needs_at_least_one_worker(workers: str, capsys) -> None:
    assert main(["sweep", "--workers", workers]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: WORKERS={workers}: a sweep needs at least one worker process"
    ]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_makefile_passes_a_path_with_spaces_whole() -> None:
    done = subprocess.run(
        ["make", "-n", "predict", "AUDIO=my note.wav", "MODEL=runs:/x y/model"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '-m nsynth_research predict "my note.wav" --model "runs:/x y/model"' in done.stdout


def test_importing_the_trial_module_leaves_logging_alone() -> None:
    code = (
        "import logging, nsynth_research.core.trial\n"
        f"raise SystemExit(len(logging.getLogger({OPTUNA_TRIAL_LOGGER!r}).filters))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


class Lines(logging.Handler):
    """Optuna's trial log as a person would read it, tracebacks included."""

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += self.format(record) + "\n"


def test_an_interrupted_trial_is_logged_in_one_line(trial_logger: logging.Logger) -> None:
    lines = Lines()
    trial_logger.addHandler(lines)

    def interrupted(trial: optuna.Trial) -> float:
        raise KeyboardInterrupt("SIGTERM")

    def broken(trial: optuna.Trial) -> float:
        raise ValueError("a bug")

    try:
        quiet_trial_interrupts()
        quiet_trial_interrupts()
        assert len(trial_logger.filters) == 1
        with pytest.raises(KeyboardInterrupt):
            optuna.create_study().optimize(interrupted, n_trials=1)
        # The CLI's "interrupted by SIGTERM" line says it: nothing from Optuna beside it.
        assert lines.text == ""

        def wrong(trial: optuna.Trial) -> float:
            raise UserError("a bad value")

        optuna.create_study().optimize(wrong, n_trials=1, catch=(UserError,))
        assert "Trial 0 failed" in lines.text and "Traceback" not in lines.text
        # Only interrupts, user errors and surplus trials are quieted; a bug keeps its traceback.
        optuna.create_study().optimize(broken, n_trials=1, catch=(ValueError,))
        assert "Traceback" in lines.text
    finally:
        trial_logger.removeHandler(lines)
