"""The commands behind `python -m nsynth_research <command>`: each loads its config, picks
the task from it, and hands both to the core or a tool. Imports are inside the commands, so
that light commands (ui, dashboard) never load TensorFlow.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from nsynth_research.core.errors import UserError
from nsynth_research.core.study_config import champion_uri

if TYPE_CHECKING:
    from pydantic import BaseModel

    from nsynth_research.core.config import ExperimentConfig, TrackingConfig
    from nsynth_research.core.study_config import StudyConfig
    from nsynth_research.core.task import Task

DEFAULT_CORPUS = Path("configs/corpus.yaml")


def cmd_data(args: argparse.Namespace) -> int:
    from nsynth_research.instruments.config import load_corpus_config
    from nsynth_research.instruments.corpus.build import render_corpus

    corpus = load_corpus_config(args.corpus, args.overrides)
    summary = render_corpus(corpus, progress=not args.quiet)
    print(summary.format_table())
    if args.archives is not None:
        from nsynth_research.instruments.corpus.pack import pack_corpus

        for packed in pack_corpus(corpus.root, args.archives, progress=not args.quiet):
            print(
                f"{packed.archive}: {packed.notes} notes, {packed.archive_bytes / 1e9:.2f} GB "
                f"({packed.content_bytes / 1e9:.2f} GB unpacked)"
            )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from nsynth_research.core.config import load_tree, validate
    from nsynth_research.core.runs import tracked_training
    from nsynth_research.core.task import with_objective
    from nsynth_research.tasks import task_for

    tree = load_tree(args.config, args.overrides)
    task = task_for(tree)
    config = validate(tree, str(args.config), task.config_type)
    task = with_objective(task, config.training.objective)
    task.ensure_data(config)
    data = task.prepare(config)
    print(f"task {task.name}, data {data.fingerprint}")
    tracked = tracked_training(task, config, data, verbose=2)
    r = tracked.result
    print(
        f"run {tracked.run_id}: {task.objective.label} {r.objective:.4f} (best epoch "
        f"{r.best_epoch + 1} of {r.epochs_run}), wall {r.seconds:.1f} s"
    )
    return 0


def _study(args: argparse.Namespace) -> tuple[Task, StudyConfig]:
    """The study and its task, bound to the objective of the study's base config, which
    every trial inherits: trials, pruning, selection and the summary all compare it."""
    from nsynth_research.core.space import base_config
    from nsynth_research.core.study_config import load_study_config
    from nsynth_research.core.task import with_objective
    from nsynth_research.tasks import task_for_file

    study = load_study_config(args.experiment, getattr(args, "overrides", []))
    task = task_for_file(study.base_config)
    metric = base_config(study, task.config_type).training.objective
    key = "objective" if study.objective is not None else "training.objective"
    return with_objective(task, metric, key), study


def cmd_sweep(args: argparse.Namespace) -> int:
    from nsynth_research.core.final_fit import check_final_fit
    from nsynth_research.core.orchestration import StudyNotReady, stopped_early
    from nsynth_research.core.selection import evaluate_study, format_summary, previous_evaluation
    from nsynth_research.core.space import base_config
    from nsynth_research.core.study import run_sweep
    from nsynth_research.core.trial import quiet_trial_interrupts

    if args.workers < 1:
        raise UserError(f"WORKERS={args.workers}: a sweep needs at least one worker process")
    quiet_trial_interrupts()
    task, study = _study(args)
    base = base_config(study, task.config_type)
    check_final_fit(study, base)  # a bad final_fit key fails now, not after the trials
    task.ensure_data(base)
    outcome = run_sweep(
        task, study, args.experiment, workers=args.workers, overrides=args.overrides
    )
    evaluation = previous_evaluation(task, study)
    if evaluation is not None:
        early = f", early: at {evaluation.early} finished" if evaluation.early else ""
        print(
            f"the test split of study {study.name!r} was already read (run "
            f"{evaluation.run_id}, {evaluation.state}{early}); reporting that evaluation, not "
            "reading it again"
        )
    elif outcome.stopped:
        print(stopped_early(study, outcome.progress, outcome.stopped))
    elif not args.no_evaluate:
        try:
            evaluation = evaluate_study(task, study)
        except StudyNotReady as wait:
            print(wait)
    print(format_summary(outcome.study, task.objective, evaluation, outcome.seconds))
    return 0


def cmd_sweep_worker(args: argparse.Namespace) -> int:
    from nsynth_research.core.orchestration import stop_with_parent

    stop_with_parent()  # before the slow imports: a sweep killed meanwhile stops it too
    from nsynth_research.core.study import worker_main
    from nsynth_research.core.trial import quiet_trial_interrupts

    quiet_trial_interrupts()
    task, study = _study(args)
    worker_main(task, study, args.worker, args.workers, args.deadline)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from nsynth_research.core.orchestration import StudyNotReady
    from nsynth_research.core.selection import evaluate_study, format_summary
    from nsynth_research.core.space import base_config
    from nsynth_research.core.storage import load_study

    task, study = _study(args)
    if args.data is not None:
        return _evaluate_data(args, study)
    if args.model or args.split != "test":
        raise UserError("MODEL= and SPLIT= choose what to score on DATA=<root>; give DATA too")
    try:
        evaluation = evaluate_study(task, study, force=args.force, incomplete=args.incomplete)
    except StudyNotReady as wait:
        print(wait)
        return 0
    opt = load_study(study, base_config(study, task.config_type), task.objective.direction)
    print(format_summary(opt, task.objective, evaluation))
    return 0


def _evaluate_data(args: argparse.Namespace, study: StudyConfig) -> int:
    """`make evaluate DATA=<root> [MODEL=...] [SPLIT=test]`: any model on any split."""
    from nsynth_research.core.config import read_yaml
    from nsynth_research.core.space import base_config
    from nsynth_research.instruments.config import InstrumentConfig
    from nsynth_research.instruments.evaluate_data import evaluate_data
    from nsynth_research.tasks import config_type_for

    if config_type_for(read_yaml(study.base_config)) is not InstrumentConfig:
        raise UserError("DATA= scores instrument models on NSynth-format data only")
    base = base_config(study, InstrumentConfig)
    model = args.model or champion_uri(study.name)
    score = evaluate_data(model, args.data, args.split, base.tracking, resamples=study.bootstrap)
    print("\n".join(score.lines))
    if not score.reused:
        print(f"logged as run {score.run_id}, linked to model run {score.model_run_id}")
    return 0


def tracking_from(args: argparse.Namespace) -> TrackingConfig:
    from nsynth_research.core.config import TrackingConfig

    return TrackingConfig(uri=args.tracking_uri, store=args.store)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from nsynth_research.core.reproduce import reproduce
    from nsynth_research.tasks import task_for

    if not args.run_id:
        raise UserError("give the run to reproduce: make reproduce RUN_ID=<id from the MLflow UI>")
    result = reproduce(task_for, args.run_id, tracking_from(args))
    print(result.format_table())
    return 0 if result.identical else 1


def cmd_predict(args: argparse.Namespace) -> int:
    from nsynth_research.instruments.config import InstrumentConfig
    from nsynth_research.instruments.predict import load_audio_any, load_predictor

    audio = load_audio_any(args.audio)
    config = InstrumentConfig(tracking=tracking_from(args))
    predictor = load_predictor(args.model, config)
    print(f"{args.audio} ({predictor.source}):")
    for rank, (family, prob) in enumerate(predictor.top(audio, args.top), start=1):
        print(f"  {rank}. {family:<11} {prob:6.1%}")
    return 0


def cmd_dream(args: argparse.Namespace) -> int:
    from nsynth_research.dream.config import load_dream_config
    from nsynth_research.dream.run import dream_model

    extra = [f"families=[{args.family}]"] if args.family else []
    extra += [f"layer={args.layer}"] if args.layer else []
    config = load_dream_config(args.config, [*args.overrides, *extra])
    result = dream_model(args.model, config, tracking_from(args))
    print(result.table)
    print(
        f"dream run {result.run_id} of model run {result.model_run_id}: wall "
        f"{result.seconds:.1f} s; open index.html among its artifacts (`make ui`)"
    )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from nsynth_research.melody.generate import Request, generate, summary
    from nsynth_research.melody.sampling import SamplingOptions

    # Artifact progress bars would bury the one-line error of a bad primer or model.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    options = SamplingOptions(args.temperature, args.top_k, args.top_p)
    request = Request(
        bars=args.bars,
        samples=args.samples,
        options=options,
        greedy_guard=args.repeat_guard,
        metre=args.meter,
        key=args.key,
        calibrate=tuple(c for c in args.calibrate.split(",") if c and c != "none"),
        seed=args.seed,
    )
    gen = generate(args.model, args.primer, request, tracking=tracking_from(args), out=args.out)
    print(summary(gen))
    return 0


def _study_config(args: argparse.Namespace) -> tuple[StudyConfig, ExperimentConfig]:
    """The study YAML and its base config, through the config schema only: the UIs
    never import a task (TensorFlow would add most of a minute to their start)."""
    from nsynth_research.core.config import read_yaml
    from nsynth_research.core.space import base_config
    from nsynth_research.core.study_config import load_study_config
    from nsynth_research.tasks import config_type_for

    study = load_study_config(args.experiment)
    return study, base_config(study, config_type_for(read_yaml(study.base_config)))


def cmd_ui(args: argparse.Namespace) -> int:
    from nsynth_research.core.space import study_experiment
    from nsynth_research.serve import check_port, serve_ui, ui_url

    check_port(args.port, "ui PORT")
    study, base = _study_config(args)
    given = args.tracking_uri or args.store != Path("mlruns")
    tracking = tracking_from(args) if given else base.tracking
    return serve_ui(tracking, args.port, ui_url(tracking, args.port, study_experiment(study)))


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna
    import sqlalchemy

    from nsynth_research.core.orchestration import adopt_legacy, reap
    from nsynth_research.core.storage import open_storage, storage_url
    from nsynth_research.serve import (
        check_port,
        dashboard_command,
        dashboard_environment,
        dashboard_url,
        serve,
    )

    check_port(args.port, "dashboard PORT")
    study, base = _study_config(args)
    storage = storage_url(study, base)
    opened = open_storage(storage)  # an unreachable storage is one line, before the server
    try:  # what the dashboard shows should be current: claims out of the list, dead trials
        adopt_legacy(opened, study.name)
        reap(optuna.load_study(study_name=study.name, storage=opened))
    except (KeyError, sqlalchemy.exc.OperationalError):
        pass  # a study not created yet, or a read-only store: show it as it is
    url = dashboard_url(storage, study.name, args.port)
    # The URL (and any password in it) goes through the environment, not the command line.
    cmd, env = dashboard_command(args.port), dashboard_environment(storage)
    return serve(cmd, "optuna-dashboard", url, args.port, env)


def cmd_clean_cache(args: argparse.Namespace) -> int:
    from nsynth_research.instruments.features.cleanup import clean_cache

    reclaimed = clean_cache(args.root)
    for folder, size in reclaimed.removed:
        print(f"removed {folder} ({_size(size)})")
    print(
        f"reclaimed {_size(reclaimed.total)} in {len(reclaimed.removed)} feature caches under "
        f"{args.root}; they refill on the next run that needs them"
    )
    return 0


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def cmd_docs(args: argparse.Namespace) -> int:
    """Refill every marked table, value and config reference from the benchmarks' results
    and the schemas, then export the study's figures and results page if it was evaluated
    (a study without a result skips that part and still succeeds)."""
    from nsynth_research.docs import NotEvaluated, config_schemas, export_docs, results_folder
    from nsynth_research.doctables import render_docs
    from nsynth_research.dream.config import DreamConfig

    schemas: dict[str, type[BaseModel]] = {**config_schemas(), "dream": DreamConfig}
    for page in render_docs(args.out, results_folder(args.out), schemas):
        print(f"{os.path.relpath(page.path)}: {page.filled} markers filled")
        for marker in page.missing:
            print(f"  nothing to fill: {marker}")
    task, study = _study(args)
    try:
        written = export_docs(task, study, args.out)
    except NotEvaluated as exc:
        print(f"skipped the study's figures and results.md: {exc}")
        return 0
    for path in written:
        print(f"wrote {path}")
    return 0
