"""A task the core has never heard of, registered from a test, run through the real command
line: a 2-trial study, its single test read, the champion and a reproduction. Nothing in
nsynth_research/core/ names it, so this passing is the proof that the core is task-agnostic.
"""

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from nsynth_research import tasks
from nsynth_research.cli import main
from nsynth_research.core.study_config import champion_name

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def toy_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(
        tasks.TASKS, "toy", ("tests.core.toy_task:ToyTask", "tests.core.toy_task:ToyConfig")
    )
    monkeypatch.chdir(tmp_path)
    base = {
        "task": "toy",
        "seed": 5,
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "training": {"batch_size": 16, "epochs": 3, "early_stopping_patience": None},
        "tracking": {"store": str(tmp_path / "mlruns")},
    }
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(base))
    study = {
        "name": "toy",
        "base_config": str(tmp_path / "toy.yaml"),
        "n_trials": 2,
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "bootstrap": 200,
        "search_space": {"model.units": {"type": "categorical", "choices": [16, 4]}},
    }
    path = tmp_path / "toy-study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_a_third_task_runs_a_study_through_the_unchanged_core(toy_study: Path, capsys) -> None:
    assert main(["sweep", "--experiment", str(toy_study)]) == 0
    out = capsys.readouterr().out
    assert "champion of study toy" in out
    assert "test accuracy on 90 drawn points" in out

    client = MlflowClient(f"sqlite:///{toy_study.parent / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("study-toy")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get("trial_number") is not None]
    assert sorted(r.data.tags["trial_number"] for r in trials) == ["0", "1"]
    assert {r.data.tags["task"] for r in trials} == {"toy"}
    assert all(r.info.status == "FINISHED" for r in runs)
    evaluation = next(r for r in runs if r.data.tags.get("role") == "evaluation")
    assert 0.0 <= evaluation.data.metrics["test_accuracy"] <= 1.0
    version = client.get_model_version_by_alias(champion_name("toy"), "champion")
    assert version.run_id in {r.info.run_id for r in trials}

    # The logged config alone re-creates a trial of the toy task, too.
    assert main(["reproduce", "--run-id", trials[0].info.run_id, "--store", "mlruns"]) == 0
    assert "identical" in capsys.readouterr().out


#: Words of the project's own tasks that the core must not need.
TASK_WORDS = ("instrument", "melody", "nsynth_research.tasks", "audio", "corpus", "-library")


def test_the_core_names_no_task() -> None:
    for path in (REPO / "nsynth_research" / "core").rglob("*.py"):
        text = path.read_text().lower()
        for word in TASK_WORDS:
            assert word not in text, f"{path.relative_to(REPO)} mentions {word!r}"


def test_the_guide_quotes_the_toy_task_in_full() -> None:
    guide = (REPO / "docs" / "adding-a-task.md").read_text()
    quoted = guide.split("```python\n")[-1].split("```")[0]
    assert quoted == (REPO / "tests" / "core" / "toy_task.py").read_text()
