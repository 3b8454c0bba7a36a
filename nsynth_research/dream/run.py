"""`make dream`: dream a logged instrument model and log the dream as its own MLflow run.

The dream run lives in the model run's experiment, tagged with the model run id
(`dream_of`), its seed and its own config (`dream_config.yaml`), so it sits next to the
model in the UI and can be re-made from those alone. The model's features, normalisation and
network all come from the model run (its config, `train_stats.npz` and logged model), never
from the current code's defaults; the start notes come from that run's validation split.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.tracking import get_run, open_store, tracked_run
from nsynth_research.dream.ascent import Bounds
from nsynth_research.dream.audio import normalised_features
from nsynth_research.dream.config import DREAM_CONFIG_ARTIFACT, DreamConfig, check_families
from nsynth_research.dream.dreams import (
    Dream,
    channel_dreams,
    class_dreams,
    deep_dream,
    source_notes,
)
from nsynth_research.dream.objectives import check_layer, conv_layers, probabilities
from nsynth_research.dream.page import write_page
from nsynth_research.dream.report import (
    Decoder,
    draw,
    family_table,
    format_table,
    hear,
    write_summary,
)
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.data.audio import load_audio
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.families import FAMILIES, FAMILY_INDEX
from nsynth_research.instruments.predict import Predictor, load_predictor, resolve_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DreamResult:
    run_id: str
    model_run_id: str
    seconds: float
    table: str


def dream_model(model: str, config: DreamConfig, tracking: TrackingConfig) -> DreamResult:
    """Dream the model behind `model` (run id, runs:/ or models:/ URI) and log the run."""
    started = time.perf_counter()
    families = check_families(config.families)
    client = open_store(tracking)
    model_run_id = resolve_run(client, model)
    predictor = load_predictor(model_run_id, InstrumentConfig(tracking=tracking))
    layer = check_layer(predictor.model, config.layer)
    model_run = get_run(client, model_run_id)
    experiment = client.get_experiment(model_run.info.experiment_id).name
    model_name = model_run.data.tags.get("mlflow.runName", model_run_id)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    tags = {
        "task": "dream",
        "dream_of": model_run_id,
        "seed": str(config.seed),
        "dream_layer": layer,
        "dream_families": ",".join(families),
    }
    with (
        tracked_run(
            tracking, run_name=f"dream {model_name}", experiment=experiment, tags=tags
        ) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_text(config_yaml(config), DREAM_CONFIG_ARTIFACT)
        out = Path(tmp)
        dreams = compute(predictor, config, families, layer)
        summary, table = _report(predictor, config, dreams, out, layer, model, model_run_id)
        seconds = time.perf_counter() - started
        summary["wall_seconds"] = seconds
        write_summary(out, summary)
        mlflow.log_artifacts(str(out))
        mlflow.log_metrics(_metrics(summary))
        run_id = run.info.run_id
    return DreamResult(run_id, model_run_id, seconds, table)


def config_yaml(config: DreamConfig) -> str:
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def compute(
    predictor: Predictor, config: DreamConfig, families: tuple[str, ...], layer: str
) -> list[Dream]:
    """All dreams of one run, in the order they are shown."""
    cfg = predictor.config.features
    model, stats = predictor.model, predictor.stats
    bounds = Bounds.of(stats, cfg)
    rng = np.random.default_rng(config.seed)
    shape = (cfg.frames, cfg.bins)
    valid = read_split(predictor.config.data.root, "valid")
    sources = source_notes(valid, families)
    if not sources:
        raise UserError(f"the validation split of {predictor.config.data.root} has no notes")
    note_x = {
        note.note_str: x
        for note, x in zip(
            sources.values(),
            normalised_features(
                np.stack([load_audio(n.path) for n in sources.values()]), stats, cfg
            ),
            strict=True,
        )
    }
    noise = config.noise_std * rng.standard_normal((len(families), *shape)).astype(np.float32)
    # A family whose own successor has no validation note still gets a start: the first one.
    first = next(iter(sources.values()))
    picked = [sources.get(f, first) for f in families]
    starts = {
        "noise": noise,
        "note": np.stack([note_x[n.note_str] for n in picked]),
    }
    log.info("class dreams: %d families x %d starts", len(families), len(starts))
    dreams = class_dreams(model, families, starts, config, bounds, rng)
    for d, n in zip([d for d in dreams if d.extra["start"] == "note"], picked, strict=True):
        d.title = f"{FAMILIES[d.target or 0]} (from {FAMILIES[n.family]} note {n.note_str})"
    src_probs = probabilities(model, np.stack([note_x[n.note_str] for n in sources.values()]))
    for n, p in zip(sources.values(), src_probs, strict=True):
        dreams.append(
            Dream(
                key=f"class/sources/{n.note_str}",
                title=f"{n.note_str} (start)",
                x=note_x[n.note_str],
                kind="source",
                target=n.family,
                prob_before=float(p[n.family]),
                prob_after=float(p[n.family]),
                extra={"input_top": FAMILIES[int(np.argmax(p))]},
            )
        )
    dd_note = next((n for n in valid if n.family == FAMILY_INDEX[families[0]]), picked[0])
    dd_x = normalised_features(load_audio(dd_note.path)[None], stats, cfg)[0]
    log.info("DeepDream of %s at %s", dd_note.note_str, layer)
    dreamed = deep_dream(model, layer, dd_x, config, bounds, rng)
    p_before, p_after = probabilities(model, np.stack([dd_x, dreamed]))[:, dd_note.family]
    dreams.append(
        Dream(
            key="deepdream/before",
            title=f"{dd_note.note_str} before",
            x=dd_x,
            kind="deepdream-source",
            target=dd_note.family,
            prob_before=float(p_before),
            prob_after=float(p_before),
        )
    )
    dreams.append(
        Dream(
            key=f"deepdream/after_{layer}",
            title=f"{dd_note.note_str}, {layer} amplified",
            x=dreamed,
            kind="deepdream",
            target=dd_note.family,
            prob_before=float(p_before),
            prob_after=float(p_after),
        )
    )
    log.info("channel dreams over %s", ", ".join(conv_layers(model)))
    dreams.extend(channel_dreams(model, config, bounds, rng, shape))
    return dreams


def _report(
    predictor: Predictor,
    config: DreamConfig,
    dreams: list[Dream],
    out: Path,
    layer: str,
    model: str,
    model_run_id: str,
) -> tuple[dict, str]:
    decoder = Decoder(
        predictor.model,
        predictor.stats,
        predictor.config.features,
        config.griffin_lim_iters,
        config.seed,
    )
    log.info("Griffin-Lim and round trip of %d inputs", len(dreams))
    hear(dreams, decoder, out)
    first_conv = predictor.model.get_layer(conv_layers(predictor.model)[0])
    figures = draw(dreams, decoder, out, layer=layer, first_kernel=first_conv.get_weights()[0])
    table = family_table(dreams)
    text = format_table(table, [d for d in dreams if d.kind == "source"])
    grids = sorted(str(p.relative_to(out)) for p in figures if "grid_" in p.name)
    write_page(
        out,
        dreams,
        title=f"Dreams of {model} (run {model_run_id})",
        intro=(
            "Spectrograms show log(1 + scale |S|) of the dreamed input after undoing the "
            "normalisation; audio is Griffin-Lim at the model's n_fft and hop. "
            f"<pre>{text}</pre>"
        ),
        figures=[
            *grids,
            "deepdream/before_after.png",
            "filters/conv0_kernels.png",
            "filters/channels.png",
        ],
    )
    summary = {
        "model": model,
        "model_run_id": model_run_id,
        "layer": layer,
        "families": table,
        "deepdream": {
            d.key: {"prob_before": d.prob_before, "prob_after": d.prob_after, **d.extra}
            for d in dreams
            if d.kind.startswith("deep")
        },
        "sources": {d.title: d.extra for d in dreams if d.kind == "source"},
    }
    return summary, text


def _metrics(summary: dict) -> dict[str, float]:
    metrics = {"wall_seconds": float(summary["wall_seconds"])}
    rates = []
    for family, row in summary["families"].items():
        for start, s in row["starts"].items():
            metrics[f"{start}_prob_before_{family}"] = float(s["prob_before"])
            metrics[f"{start}_prob_after_{family}"] = float(s["prob_after"])
        metrics[f"roundtrip_rate_{family}"] = float(row["roundtrip_rate"])
        rates.append(row["roundtrip_rate"])
    metrics["roundtrip_rate"] = float(np.mean(rates))
    return metrics
