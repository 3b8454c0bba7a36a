"""`make generate`: load a melody model from the tracking store, prime it, continue the
melody for the requested bars (sampled at a temperature, and greedily), and write and log
MIDI, a piano roll, a WAV and an HTML page, plus how the result compares with test tunes.

Without a primer, the first bar of a test tune (picked by the seed) primes the model; that
reads test melodies, never test scores, so the single test read stays single.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.errors import UserError
from nsynth_research.core.files import atomic_save, atomic_write_bytes, atomic_write_text
from nsynth_research.core.runs import run_config
from nsynth_research.core.tracking import get_run, open_store, tracked_run
from nsynth_research.melody.config import MelodyConfig
from nsynth_research.melody.corpus import Tune
from nsynth_research.melody.data import melody_splits
from nsynth_research.melody.primer import Primer, read_primer
from nsynth_research.melody.render import (
    figure_png,
    html_page,
    piano_roll,
    render_wav,
    to_midi,
    wav_bytes,
)
from nsynth_research.melody.sampling import check_request, continue_melody
from nsynth_research.melody.stats import bars_of, compare
from nsynth_research.melody.task import run_vocabulary
from nsynth_research.melody.tokens import Event, Vocabulary, event_token

DEFAULT_MODEL = "models:/nsynth-melody@champion"
DEFAULT_BAR = Fraction(4)
EXPERIMENT = "melody-generate"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Generation:
    run_id: str
    primer: Primer
    sampled: list[Event]
    greedy: list[Event]
    bar: Fraction
    files: list[Path] = field(default_factory=list)
    distances: dict[str, float] = field(default_factory=dict)


def resolve_model(client: MlflowClient, model: str) -> tuple[str, str]:
    """(training run id, model URI) of a run id, `runs:/<id>/model` or `models:/name@alias`
    (or `models:/name/<version>`)."""
    if _RUN_ID.match(model):
        run = get_run(client, model)
        uri = run.data.tags.get("model_uri")
        if not uri:
            raise UserError(f"run {model} logged no model; pick a run with a model")
        return model, uri
    if model.startswith("runs:/"):
        run_id = model.removeprefix("runs:/").split("/")[0]
        get_run(client, run_id)
        return run_id, model
    if model.startswith("models:/"):
        name, _, ref = model.removeprefix("models:/").replace("@", "/@").partition("/")
        try:
            version = (
                client.get_model_version_by_alias(name, ref[1:])
                if ref.startswith("@")
                else client.get_model_version(name, ref)
            )
        except MlflowException:
            raise UserError(
                f"no registered model {model} in {client.tracking_uri}; run `make sweep "
                "EXPERIMENT=experiments/melody.yaml` first or pass MODEL=<run id>"
            ) from None
        return version.run_id, model
    raise UserError(f"MODEL={model!r}: give a run id, runs:/<id>/model or models:/<name>@<alias>")


def test_primer(test: Sequence[Tune], vocab: Vocabulary, seed: int) -> Primer:
    """The first bar of a test tune picked by `seed`, among tunes whose first bar holds only
    events the model knows (a primer event outside the vocabulary cannot be fed in)."""
    firsts = []
    for tune in test:
        first = tune.events[: len(bars_of(tune.events, tune.bar or DEFAULT_BAR)[0])]
        if all(event_token(e) in vocab.index for e in first):
            firsts.append((tune, first))
    if not firsts:
        raise UserError("no test tune starts with events the model knows; pass PRIMER=...")
    tune, first = firsts[int(np.random.default_rng(seed).integers(len(firsts)))]
    return Primer(tuple(first), tune.bar, f"first bar of test tune {tune.id}")


def generate(
    model: str,
    primer: str | None,
    *,
    bars: int,
    temperature: float,
    seed: int,
    tracking: TrackingConfig,
    out: Path,
) -> Generation:
    """Generate, write the files under `out`, log them into a `melody-generate` run."""
    check_request(bars, temperature)
    client = open_store(tracking)
    run_id, model_uri = resolve_model(client, model)
    config = run_config(client, run_id, MelodyConfig)  # refuses another task's run
    vocab = run_vocabulary(run_id)
    data = melody_splits(config, progress=False)
    test = data.splits["test"]
    chosen = read_primer(primer, config.tokens) if primer else test_primer(test, vocab, seed)
    primer_ids = vocab.encode_strict(chosen.events)
    bar = chosen.bar or DEFAULT_BAR
    net = mlflow.keras.load_model(model_uri)
    kwargs = {"sequence_length": config.model.sequence_length, "bar": bar, "bars": bars}
    sampled = continue_melody(
        net, vocab, primer_ids, temperature=temperature, rng=np.random.default_rng(seed), **kwargs
    )
    greedy = continue_melody(
        net, vocab, primer_ids, temperature=0.0, rng=np.random.default_rng(seed), **kwargs
    )
    distances = compare(
        [sampled], [bar], [t.events for t in test], [t.bar or DEFAULT_BAR for t in test]
    )
    gen = Generation(run_id, chosen, sampled, greedy, bar, distances=distances)
    _write(gen, out, temperature, bars)
    with tracked_run(
        tracking,
        experiment=EXPERIMENT,
        run_name=f"generate from {run_id[:8]}",
        tags={"task": "melody", "generated_from": run_id, "model_uri": model_uri},
    ):
        mlflow.log_params(
            {"bars": bars, "temperature": temperature, "seed": seed, "primer": chosen.source}
        )
        mlflow.log_metrics(distances)
        for path in gen.files:
            mlflow.log_artifact(str(path), "generated")
    return gen


def _write(gen: Generation, out: Path, temperature: float, bars: int) -> None:
    primer = list(gen.primer.events)
    title = f"{bars} bars after {gen.primer.source}, temperature {temperature}"
    roll = figure_png(piano_roll(primer, gen.sampled, gen.bar, title))
    wav = wav_bytes(render_wav(primer + gen.sampled))
    note = (
        f"Grey: primer; blue: generated by run {gen.run_id}. Distances to test tunes "
        f"(total variation): {json.dumps({k: round(v, 3) for k, v in gen.distances.items()})}"
    )
    files = {
        "melody.mid": lambda p: atomic_save(p, to_midi(primer + gen.sampled).write),
        "melody_greedy.mid": lambda p: atomic_save(p, to_midi(primer + gen.greedy).write),
        "piano_roll.png": lambda p: atomic_write_bytes(p, roll),
        "melody.wav": lambda p: atomic_write_bytes(p, wav),
        "melody.html": lambda p: atomic_write_text(
            p, html_page(title, roll, wav, primer + gen.sampled, note)
        ),
        "melody.json": lambda p: atomic_write_text(
            p,
            json.dumps(
                {
                    "primer": [event_token(e) for e in primer],
                    "sampled": [event_token(e) for e in gen.sampled],
                    "greedy": [event_token(e) for e in gen.greedy],
                    "distances_to_test": gen.distances,
                },
                indent=2,
            ),
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, write in files.items():
        write(out / name)
        gen.files.append(out / name)
