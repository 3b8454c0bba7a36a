"""Command line: `python -m nsynth_research <command>`; the Makefile targets call these.

User errors (bad data, configs, run ids) and failures of the machine (a full disk, a read-only
or unreachable store) are printed as one clear message with exit code 2; SIGTERM and Ctrl-C
close open runs and exit 143 / 130 with one line; anything else is a bug and keeps its
traceback. The commands themselves live in `commands.py`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nsynth_research.commands import (
    DEFAULT_CORPUS,
    cmd_clean_cache,
    cmd_dashboard,
    cmd_data,
    cmd_docs,
    cmd_dream,
    cmd_evaluate,
    cmd_generate,
    cmd_predict,
    cmd_reproduce,
    cmd_sweep,
    cmd_sweep_worker,
    cmd_train,
    cmd_ui,
)
from nsynth_research.core.errors import MachineError, UserError
from nsynth_research.core.interrupts import STOPS, Terminated
from nsynth_research.core.orchestration import machine_failure, quiet_machine_failures
from nsynth_research.core.study_config import champion_uri


def model_arg(p: argparse.ArgumentParser, champion: str) -> None:
    """`--model` of the commands that load a logged model, defaulting to a study's champion."""
    p.add_argument(
        "--model",
        default=champion,
        help="run id, runs:/<id>/model or models:/<name>@<alias> (default: the champion)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nsynth-research",
        description="Find the best CNN for NSynth instrument families, tracked in MLflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="render the embedded NSynth-format default corpus")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus YAML")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--archives",
        type=Path,
        default=None,
        help="also pack the corpus as NSynth's nsynth-{train,valid,test}.jsonwav.tar.gz here",
    )
    p.add_argument("overrides", nargs="*", help="key=value corpus overrides, e.g. size=tiny")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train and log one run from a config")
    p.add_argument("--config", type=Path, default=Path("configs/baseline.yaml"))
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model.dropout=0.2")
    p.set_defaults(func=cmd_train)

    # add_argument keywords shared by several commands (their values differ in type).
    experiment: dict[str, Any] = {
        "type": Path,
        "default": Path("experiments/default.yaml"),
        "help": "study YAML",
    }
    study_overrides: dict[str, Any] = {
        "nargs": "*",
        "help": "key=value study overrides, e.g. n_trials=4",
    }
    p = sub.add_parser("sweep", help="run or resume a study, then evaluate its champion once")
    p.add_argument("--experiment", **experiment)
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--no-evaluate", action="store_true", help="skip the final test evaluation")
    p.add_argument("overrides", **study_overrides)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("sweep-worker", help=argparse.SUPPRESS)
    p.add_argument("--experiment", **experiment)
    p.add_argument("--worker", type=int, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--deadline", type=float, default=None)
    p.add_argument("overrides", **study_overrides)
    p.set_defaults(func=cmd_sweep_worker)

    p = sub.add_parser("evaluate", help="score the study's best trial once on the test split")
    p.add_argument("--experiment", **experiment)
    p.add_argument("--force", action="store_true", help="evaluate again although done before")
    p.add_argument(
        "--incomplete",
        action="store_true",
        help="evaluate a study that stopped before n_trials (reported as an early read)",
    )
    p.add_argument(
        "--data", type=Path, default=None, help="score MODEL on this NSynth-format data root"
    )
    p.add_argument(
        "--model", default="", help="with --data: run id or models:/name@alias (the champion)"
    )
    p.add_argument("--split", default="test", help="with --data: the split to score")
    p.add_argument("overrides", **study_overrides)
    p.set_defaults(func=cmd_evaluate)

    def store_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", type=Path, default=Path("mlruns"), help="local tracking store")
        p.add_argument("--tracking-uri", default=None, help="e.g. http://host:5000 instead")

    p = sub.add_parser("reproduce", help="retrain a logged run from its config and compare")
    p.add_argument("--run-id", default="")
    store_args(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("predict", help="top-3 families of an audio file")
    p.add_argument("audio", type=Path)
    model_arg(p, champion_uri("default"))
    p.add_argument("--top", type=int, default=3)
    store_args(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("dream", help="Deep Dream a logged model: pictures, audio, round trip")
    model_arg(p, champion_uri("default"))
    p.add_argument("--family", default="", help="comma-separated families (default: all 11)")
    p.add_argument(
        "--layer", default="", help="layer the DeepDream amplifies (default: last conv block's)"
    )
    p.add_argument("--config", type=Path, default=None, help="dream config YAML (optional)")
    p.add_argument(
        "overrides",
        nargs="*",
        help="key=value dream overrides, e.g. objective=logit seeds=5 classes.steps=40",
    )
    store_args(p)
    p.set_defaults(func=cmd_dream)

    p = sub.add_parser("generate", help="continue a melody with a melody Char-RNN")
    model_arg(p, champion_uri("melody"))
    p.add_argument(
        "--primer",
        default="",
        help="an .abc/.mid file or events like 'G4/1 | C5/1 E5/1' ('|' marks barlines; "
        "default: a test tune's first bar)",
    )
    p.add_argument("--bars", type=int, default=8, help="bars to generate after the primer")
    p.add_argument("--samples", type=int, default=8, help="sampled continuations")
    p.add_argument("--temperature", type=float, default=1.0, help="0 is greedy")
    p.add_argument("--top-k", type=int, default=0, help="sample from the k likeliest (0: off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: off)")
    p.add_argument(
        "--repeat-guard",
        type=int,
        default=2,
        help="greedy never repeats an N-event figure (0: off)",
    )
    p.add_argument("--meter", default=None, help="time signature, e.g. 3/4 (default: primer's)")
    p.add_argument("--key", default=None, help="key, e.g. G or 'E minor' (default: primer's)")
    p.add_argument(
        "--calibrate",
        default="metre,key",
        help="match barline crossings (metre) and out-of-key notes (key) to the corpus, or none",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, default=Path("data/melody/generated"), help="a folder per run in it"
    )
    store_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("ui", help="MLflow UI for this repo's store on 127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--experiment", **experiment)
    store_args(p)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("dashboard", help="optuna-dashboard on a study's storage, 127.0.0.1")
    p.add_argument("--experiment", **experiment)
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("docs", help="export a study's figures and results into docs/")
    p.add_argument("--experiment", **experiment)
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("clean-cache", help="remove a data root's feature caches, say what it freed")
    p.add_argument("--root", type=Path, default=Path("data/nsynth-gm"), help="data root")
    p.set_defaults(func=cmd_clean_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet_machine_failures()
    STOPS.install()
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        try:
            return func(args)
        except Exception as exc:
            stop = STOPS.surfaced(exc)
            if stop is not exc:
                raise stop from exc
            raise
    except (UserError, MachineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # Exit codes follow the shell's 128 + signal: 143 for SIGTERM, 130 for Ctrl-C.
        name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
        print(
            f"interrupted by {name}: open runs were closed FAILED (tagged INTERRUPTED) and "
            "running trials failed; rerun the same command to resume",
            file=sys.stderr,
        )
        return code
    except Exception as exc:
        message = machine_failure(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
