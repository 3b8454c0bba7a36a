"""`make dream`: dream a logged instrument model and log the dream as its own MLflow run.

Dream runs live in the experiment `dreams`, never in the model's study experiment, each
tagged `dream_of=<model run id>` and described (`mlflow.note.content`) by the model run and
what was dreamed. Settings are params (and `dream_config.yaml`), outcomes are metrics (rates,
flag counts, WAV levels, per-step curves), and the artifacts are the WAVs, the dreamed arrays
(`dreams.npz`), the figures, `summary.json` and the page `index.html`.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import tensorflow as tf
import yaml

from nsynth_research.core.config import TrackingConfig, flatten
from nsynth_research.core.describe import set_experiment_note, set_run_note
from nsynth_research.core.tracking import get_run, open_store, tracked_run
from nsynth_research.dream.artifacts import write_artifacts
from nsynth_research.dream.compute import Prepared, compute, prepare
from nsynth_research.dream.config import DREAM_CONFIG_ARTIFACT, DreamConfig
from nsynth_research.dream.curves import curve_metrics
from nsynth_research.dream.dreams import Dream
from nsynth_research.dream.flags import failed
from nsynth_research.dream.report import (
    Decoder,
    control,
    family_table,
    format_table,
    hear,
    write_summary,
)
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.families import FAMILIES
from nsynth_research.instruments.predict import load_predictor, resolve_run

log = logging.getLogger(__name__)

DREAM_EXPERIMENT = "dreams"


class Timings:
    """Wall and process-CPU seconds per phase (CPU time tells a busy machine's share apart)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall[phase] = time.perf_counter() - wall
        self.cpu[phase] = time.process_time() - cpu


@dataclass(frozen=True)
class DreamResult:
    run_id: str
    model_run_id: str
    seconds: float
    table: str


def dream_model(model: str, config: DreamConfig, tracking: TrackingConfig) -> DreamResult:
    """Dream the model behind `model` (run id, runs:/ or models:/ URI) and log the run."""
    started = time.perf_counter()
    client = open_store(tracking)
    model_run_id = resolve_run(client, model)
    predictor = load_predictor(model_run_id, InstrumentConfig(tracking=tracking))
    model_name = get_run(client, model_run_id).data.tags.get("mlflow.runName", model_run_id)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    timings = Timings()
    with timings("validation_notes"):
        prep = prepare(predictor, config)
    tags = {
        "task": "dream",
        "dream_of": model_run_id,
        "seed": str(config.seed),
        "dream_layer": prep.layer,
        "dream_objective": config.objective,
        "dream_families": ",".join(prep.families),
    }
    with (
        tracked_run(
            tracking, run_name=f"dream {model_name}", experiment=DREAM_EXPERIMENT, tags=tags
        ) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        run_id = run.info.run_id
        set_experiment_note(
            client,
            run.info.experiment_id,
            "Deep Dream runs of instrument models: each names its model run (tag dream_of) "
            "and holds its page (index.html), WAVs, dreamed arrays and per-step curves.",
        )
        set_run_note(client, run_id, describe(prep, model, model_run_id, model_name))
        mlflow.log_params(params(prep, model, model_run_id))
        mlflow.log_text(
            yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), DREAM_CONFIG_ARTIFACT
        )
        out = Path(tmp)
        with timings("ascent"):
            dreams = compute(prep)
        decoder = Decoder(
            predictor.model,
            predictor.stats,
            predictor.config.features,
            config.griffin_lim_iters,
            config.seed,
        )
        with timings("griffin_lim"):
            audio = hear(dreams, decoder, out)
        with timings("figures_page"):
            table = family_table(dreams)
            text = format_table(table, dreams)
            write_artifacts(
                prep, dreams, audio, out, text, f"Dreams of {model} (run {model_run_id})"
            )
        summary = _summary(prep, dreams, table, model, model_run_id)
        summary["timings"] = timings.wall
        summary["cpu_seconds"] = timings.cpu
        summary["wall_seconds"] = time.perf_counter() - started
        write_summary(out, summary)
        mlflow.log_artifacts(str(out))
        metrics = _metrics(summary, dreams)
        mlflow.log_metrics(metrics)
        client.log_batch(run_id, metrics=curve_metrics(dreams, int(time.time() * 1000)))
    return DreamResult(run_id, model_run_id, time.perf_counter() - started, text)


def describe(prep: Prepared, model: str, model_run_id: str, model_name: str) -> str:
    cfg = prep.config
    return (
        f"Deep Dream of model run {model_run_id} ({model_name}, {model}): class dreams of "
        f"{len(prep.families)} families x {cfg.seeds} seeds from noise and from real notes "
        f"({cfg.objective} objective), DeepDream of a note at {prep.layer}, and "
        f"{len(prep.channels)} channels of {len(prep.blocks)} conv blocks; real notes from "
        f"the validation split of {prep.predictor.config.data.root} ({len(prep.pool.notes)} "
        "notes scored). Open index.html among the artifacts."
    )


def params(prep: Prepared, model: str, model_run_id: str) -> dict[str, str]:
    resolved = prep.config.model_copy(update={"layer": prep.layer, "families": prep.families})
    flat = flatten(resolved.model_dump(mode="json"))
    out = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in flat.items()}
    out.update(model=model, model_run_id=model_run_id, example_pool_used=str(len(prep.pool.notes)))
    return out


def _summary(
    prep: Prepared, dreams: list[Dream], table: dict, model: str, model_run_id: str
) -> dict[str, Any]:
    same, total = control(dreams)
    return {
        "model": model,
        "model_run_id": model_run_id,
        "objective": prep.config.objective,
        "layer": prep.layer,
        "blocks": [{"conv": b.conv, "readout": b.readout} for b in prep.blocks],
        "frame_energy_limit": prep.bounds.frame_energy,
        "families": table,
        "control": {"same": same, "total": total},
        "dreams": {
            d.key: {"kind": d.kind, "title": d.title, "flags": d.flags, **d.extra} for d in dreams
        },
    }


def _metrics(summary: dict[str, Any], dreams: list[Dream]) -> dict[str, float]:
    m: dict[str, float] = {"wall_seconds": float(summary["wall_seconds"])}
    m.update({f"time.{k}": float(v) for k, v in summary["timings"].items()})
    m.update({f"cpu.{k}": float(v) for k, v in summary["cpu_seconds"].items()})
    classes = [d for d in dreams if d.kind == "class"]
    for family, row in summary["families"].items():
        m[f"reached_rate.{family}"] = (row["reached_noise"] + row["reached_note"]) / row["count"]
        m[f"heard_rate.{family}"] = row["heard"] / row["count"]
    if classes:
        m["reached_rate"] = float(np.mean([bool(d.reached) for d in classes]))
        m["heard_rate"] = float(
            np.mean([d.extra.get("heard_as") == FAMILIES[d.target or 0] for d in classes])
        )
    for kind in ("class", "channel", "deepdream"):
        mine = [d for d in dreams if d.kind == kind]
        if mine:
            m[f"flagged.{kind}"] = float(sum(map(failed, mine)))
    m["control_same"] = float(summary["control"]["same"])
    m["control_total"] = float(summary["control"]["total"])
    heard = [d for d in dreams if "peak" in d.extra]
    if heard:
        m["wav_peak_max"] = max(d.extra["peak"] for d in heard)
        m["wav_peak_raw_max"] = max(d.extra["peak_raw"] for d in heard)
        m["wav_turned_down"] = float(sum(d.extra["gain_db"] < 0 for d in heard))
        m["wav_gain_db_min"] = min(d.extra["gain_db"] for d in heard)
    return m
