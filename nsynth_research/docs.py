"""Regenerates what docs/ shows from what the project measured and logged, so no figure or
number there is drawn or typed by hand: the marked tables, values and config references of
every page from `benchmarks/results/*.json` and the schemas (`doctables`), and the default
study's figures and results page from its logged runs, once the study has been evaluated."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from nsynth_research.core.evaluations import Evaluation, previous_evaluation
from nsynth_research.core.parent_run import PARENT_ATTR
from nsynth_research.core.selection import format_summary
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import load_study
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.task import Task
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import CorpusConfig
from nsynth_research.tasks import TASKS, config_type_for

#: (run, artifact) -> (file under docs/, alt text); `{split}` is the part of the test split
#: the study selected on (`test_transfer` across libraries, `test` in library).
#: A figure the run did not log (no parallel coordinates without searched choices, no
#: confusion matrix for a task without classes) is left out.
FIGURES = {
    ("study", "figures/optimization_history.png"): ("optimization_history.png", "history"),
    ("study", "figures/parallel_coordinate.png"): ("parallel_coordinate.png", "choices"),
    ("evaluation", "figures/confusion_{split}.png"): ("confusion_test.png", "test confusion"),
    ("evaluation", "figures/tsne_{split}_2d.png"): ("tsne_test_2d.png", "test t-SNE 2-D"),
    ("evaluation", "figures/tsne_{split}_3d.png"): ("tsne_test_3d.png", "test t-SNE 3-D"),
}
#: Evaluation-run tag naming the metric the study selected on, evaluated on test.
HEADLINE_TAG = "headline_metric"

#: Artifact of the newest finished dream run (`make dream`, `dream/artifacts.py`) -> file
#: under docs/; one a run did not log (no kernels for a network without convs) is left out.
DREAM_FIGURES = {
    "class/grid_noise.png": "dream_classes_noise.png",
    "class/grid_note.png": "dream_classes_note.png",
    "class/curves_logit.png": "dream_curves_logit.png",
    "filters/channels.png": "dream_channels.png",
    "filters/conv0_kernels.png": "dream_conv0_kernels.png",
}


class NotEvaluated(Exception):
    """The study has no finished test evaluation, so there is nothing of it to export."""


def results_folder(docs: Path) -> Path:
    """`benchmarks/results/` of the repository whose docs/ this is: both sit in its root, as
    README.md does (`doctables.render_docs`)."""
    return Path(docs).resolve().parent / "benchmarks" / "results"


def config_schemas() -> dict[str, type[BaseModel]]:
    """Marker name -> schema of the config references docs pages embed (`<!-- config: -->`):
    the study, the instrument corpus and every task's run config."""
    tasks = {name: config_type_for({"task": name}) for name in TASKS}
    return {"study": StudyConfig, "corpus": CorpusConfig, **tasks}


def _logged(client: MlflowClient, run_id: str, artifact: str) -> bool:
    folder = artifact.rpartition("/")[0]
    return artifact in {a.path for a in client.list_artifacts(run_id, folder or None)}


def _copy(client: MlflowClient, wanted: dict[tuple[str, str], str], out: Path) -> list[Path]:
    """Copy each (run id, artifact) in `wanted` that its run logged to `out / name`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for (run_id, artifact), name in wanted.items():
            if _logged(client, run_id, artifact):
                local = client.download_artifacts(run_id, artifact, tmp)
                written.append(Path(shutil.copy(local, out / name)))
    return written


def export_dream_figures(client: MlflowClient, out: Path) -> list[Path]:
    """Copy the pictures of the newest finished dream run in the store, if there is one
    (dream runs are optional: no run, nothing copied)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    found = client.search_runs(
        experiments,
        "tags.task = 'dream' and tags.state = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not found:
        return []
    run_id = found[0].info.run_id
    return _copy(client, {(run_id, a): name for a, name in DREAM_FIGURES.items()}, out)


def evaluated(task: Task, study: StudyConfig) -> Evaluation:
    """The study's finished test evaluation; NotEvaluated says why there is none. Checked
    before the study is opened, so a study that does not exist is not created."""
    evaluation = previous_evaluation(task, study)
    if evaluation is None:
        raise NotEvaluated(f"study {study.name!r} has no test evaluation yet (`make sweep`)")
    if evaluation.state != "FINISHED":
        raise NotEvaluated(
            f"the test evaluation of study {study.name!r} ended {evaluation.state} "
            f"(run {evaluation.run_id})"
        )
    return evaluation


def export_docs(task: Task, study: StudyConfig, out: Path) -> list[Path]:
    """Copy the evaluated study's figures and the newest dream run's into `out` and write
    `results.md` with the study's summary. Raises NotEvaluated when there is no result."""
    evaluation = evaluated(task, study)
    base = base_config(study, task.config_type)
    opt = load_study(study, base, task.objective.direction)
    client = open_store(base.tracking)
    tags = client.get_run(evaluation.run_id).data.tags
    headline = tags.get(HEADLINE_TAG, "test_accuracy").removesuffix("_accuracy")
    runs = {"study": opt.user_attrs.get(PARENT_ATTR, ""), "evaluation": evaluation.run_id}
    wanted = {
        (runs[which], artifact.format(split=headline)): name
        for (which, artifact), (name, _) in FIGURES.items()
        if runs[which]
    }
    written = _copy(client, wanted, out)
    captions = dict(FIGURES.values())
    pictures = "".join(f"![{captions[p.name]}]({p.name})\n" for p in written)
    written.extend(export_dream_figures(client, out))
    parts = [
        f"# Results of study `{study.name}`\n",
        "Generated by `make docs` from the logged runs; do not edit by hand. The first line "
        "is the test figure of the metric the study selected on, with its 95% interval over "
        "the sampled unit (instruments, tunes).\n",
        f"```\n{format_summary(opt, task.objective, evaluation)}\n```\n",
        family_tables(client, evaluation.run_id, headline, evaluation.lines),
        f"Figures, each titled with what it was computed on:\n\n{pictures}" if pictures else "",
    ]
    results = out / "results.md"
    results.write_text("\n".join(part for part in parts if part))
    written.append(results)
    return written


def family_tables(client: MlflowClient, run_id: str, headline: str, lines: list[str]) -> str:
    """One Markdown table of per-family test scores for each scored part of the test split,
    the one the study selected on first, each titled with the notes it was computed on
    (families without test notes are not listed)."""
    logged = [a.path for a in client.list_artifacts(run_id) if a.path.startswith("per_class_")]
    splits = sorted((p.removeprefix("per_class_").removesuffix(".json") for p in logged),
                    key=lambda split: split != headline)  # fmt: skip
    titles = [
        x.removeprefix("per family, ").rstrip(":") for x in lines if x.startswith("per family")
    ]
    parts = []
    for split, title in zip(splits, titles or splits, strict=False):
        per_class = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/per_class_{split}.json"))
        rows = [
            f"Per-family scores, {title} (`{split}_*` metrics):",
            "",
            "| family | precision | recall | F1 | notes | instruments |",
            "|---|---:|---:|---:|---:|---:|",
            *(
                f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} "
                f"| {s['support']} | {s.get('instruments', '?')} |"
                for name, s in per_class.items()
            ),
        ]
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)
