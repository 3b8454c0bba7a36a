"""`make generate`: load a melody model from the tracking store, prime it, and continue the
primer several times (sampled) and once greedily, in the primer's metre and key; sample the
n-gram baseline from the same primer with the same options; measure everything against real
continuations of held-out tunes; write it all into a folder of its own and log it as one run
of the `melody-generate` experiment.

Without a primer, the anacrusis and first bar of a test tune (picked by the seed) prime the
model, and the tune's real continuation is written beside the generated ones: that reads test
melodies, never test scores, so the study's single test read stays single. The real-tune
reference for the statistics is the validation split (tunes the network never trained on).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace as dc_replace
from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.describe import set_experiment_note, set_run_note
from nsynth_research.core.errors import UserError
from nsynth_research.core.runs import run_config
from nsynth_research.core.study_config import champion_uri
from nsynth_research.core.tracking import get_run, open_store, tracked_run
from nsynth_research.melody.calibration import Calibration
from nsynth_research.melody.config import MelodyConfig
from nsynth_research.melody.corpus import Tune
from nsynth_research.melody.data import MelodyData, common_key_step, melody_splits, shift
from nsynth_research.melody.metre import Key, continuation, parse_key, parse_metre
from nsynth_research.melody.outputs import Generated, write_outputs
from nsynth_research.melody.primer import Framing, Primer, frame, read_primer
from nsynth_research.melody.record import (
    EXPERIMENT,
    EXPERIMENT_NOTE,
    Generation,
    Request,
    facts,
    metrics,
    note,
    params,
    summary,
)
from nsynth_research.melody.references import (
    best_ngram_order,
    common_metre,
    ngram_model,
    real_continuation,
    real_excerpts,
    tune_primer,
)
from nsynth_research.melody.report import compare_sets
from nsynth_research.melody.sampling import Plan, continue_batch
from nsynth_research.melody.stats import Melody
from nsynth_research.melody.task import run_vocabulary
from nsynth_research.melody.tokens import Vocabulary, event_token

__all__ = ["Request", "generate", "summary"]

DEFAULT_MODEL = champion_uri("melody")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


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
        if version.run_id is None:  # the project registers models only from runs
            raise UserError(f"registered model {model} names no run; pass MODEL=<run id>")
        return version.run_id, model
    raise UserError(f"MODEL={model!r}: give a run id, runs:/<id>/model or models:/<name>@<alias>")


def test_primer(test: Sequence[Tune], vocab: Vocabulary, seed: int) -> tuple[Primer, Tune]:
    """The anacrusis and first bar of a test tune picked by `seed`, among tunes with a metre
    and a key whose first bar holds only events the model knows."""
    usable = []
    for tune in test:
        primer = tune_primer(tune)
        known = all(event_token(e) in vocab.index for e in primer.events)
        if tune.metre and tune.key and primer.events and known:
            usable.append((primer, tune))
    if not usable:
        raise UserError("no test tune starts with events the model knows; pass PRIMER=...")
    return usable[int(np.random.default_rng(seed).integers(len(usable)))]


def generate(
    model: str, primer: str | None, request: Request, *, tracking: TrackingConfig, out: Path
) -> Generation:
    """Generate, write the files under `out/<run id>/`, log them into a `melody-generate` run."""
    request.check()
    metre = parse_metre(request.metre) if request.metre else None
    key = parse_key(request.key) if request.key else None
    client = open_store(tracking)
    run_id, model_uri = resolve_model(client, model)
    config = run_config(client, run_id, MelodyConfig)  # refuses another task's run
    vocab = run_vocabulary(run_id)
    data = melody_splits(config, progress=False)
    tune = None
    if primer:
        chosen = read_primer(primer, config.tokens)
    else:
        chosen, tune = test_primer(data.splits["test"], vocab, request.seed)
    framing = frame(chosen, metre=metre, key=key, default_metre=common_metre(data.splits["train"]))
    # A model trained with every tune moved to C reads and writes in C: the primer moves there
    # and the continuations come back (a test tune is already in the data's key).
    step = common_key_step(framing.key.tonic) if config.transpose.mode == "common" else 0
    step = 0 if tune is not None else step
    calibration = Calibration.fit(data.splits["train"])
    plan = make_plan(*transposed(chosen, framing, step), vocab, calibration, request)
    order = best_ngram_order(get_run(client, run_id).data.metrics)
    net = mlflow.keras.load_model(model_uri)
    melodies = continuations(
        net, config.model.sequence_length, vocab, data, plan, framing, request, order, -step
    )
    if tune is not None and (real := real_continuation(tune, chosen, request.bars)):
        what = f"what test tune {tune.id} plays next"
        melodies.append(
            Generated("real continuation", "real continuation", what, real, "tab:green")
        )
    reference = real_excerpts(data.splits["valid"], request.bars)
    if not reference:
        raise UserError("no validation tune has a metre and a key to compare with")
    groups: dict[str, list[Melody]] = {}
    for m in melodies:
        groups.setdefault(m.group, []).append(m.melody)
    comparison = compare_sets(groups, reference, seed=request.seed)
    with tracked_run(
        tracking,
        experiment=EXPERIMENT,
        run_name=f"generate from {run_id[:8]}",
        tags={"task": "melody", "generated_from": run_id, "model_uri": model_uri},
    ) as active:
        gen = Generation(
            active.info.run_id,
            model_uri,
            run_id,
            chosen,
            framing,
            request,
            melodies,
            comparison,
            order,
            len(reference),
            out / active.info.run_id,
        )
        gen.files = write_outputs(
            gen.folder,
            primer=chosen,
            framing=framing,
            melodies=melodies,
            comparison=comparison,
            reference=reference,
            facts=facts(gen),
            title=f"{request.bars} bars after {chosen.notes_text(8)} ({chosen.source})",
        )
        mlflow.log_params(params(gen))
        mlflow.log_metrics(metrics(comparison))
        mlflow.log_artifacts(str(gen.folder), "generated")
        set_run_note(client, gen.run_id, note(gen))
        set_experiment_note(client, active.info.experiment_id, EXPERIMENT_NOTE)
    return gen


def make_plan(
    primer: Primer, framing: Framing, vocab: Vocabulary, calibration: Calibration, request: Request
) -> Plan:
    """The continuation's length, bar grid and calibration."""
    bar = framing.metre.bar
    start, length = continuation(bar, framing.pickup, primer.length, request.bars)
    ids = tuple(vocab.encode_strict(primer.events))
    found = calibration.constraints(request.calibrate, framing.metre, framing.key, vocab)
    return Plan(ids, length, bar, start, found)


def transposed(primer: Primer, framing: Framing, step: int) -> tuple[Primer, Framing]:
    """The primer and its framing moved by `step` semitones."""
    if not step:
        return primer, framing
    moved = shift(primer.events, step)
    if moved is None:
        raise UserError(f"the primer leaves the piano's range moved {step:+d} semitones to C")
    key = Key((framing.key.tonic + step) % 12, framing.key.mode)
    return dc_replace(primer, events=moved), dc_replace(framing, key=key)


def continuations(
    net,
    length: int,
    vocab: Vocabulary,
    data: MelodyData,
    plan: Plan,
    framing: Framing,
    request: Request,
    order: int,
    back: int = 0,
) -> list[Generated]:
    """The network's samples and greedy continuation, and the n-gram's samples, each moved
    `back` semitones into the primer's key."""

    def step(windows: np.ndarray) -> np.ndarray:
        return np.asarray(net(windows, training=False))

    def melody(events) -> Melody:
        moved = shift(events, back)
        if moved is None:
            raise UserError(f"a continuation leaves the piano's range moved {back:+d} semitones")
        return Melody(moved, framing.key, framing.metre.bar, plan.position)

    rng = np.random.default_rng(request.seed)
    n, opts = request.samples, request.options
    sampled = continue_batch(step, vocab, [plan] * n, opts, sequence_length=length, rng=rng)
    (greedy,) = continue_batch(step, vocab, [plan], request.greedy, sequence_length=length, rng=rng)
    baseline = ngram_model(data.splits["train"], vocab, order)
    ngram = continue_batch(
        baseline.step, vocab, [plan] * n, opts, sequence_length=max(length, order), rng=rng
    )
    how = opts.describe()
    return [
        *(
            Generated(f"sample {i + 1}", "LSTM sample", how, melody(m), "tab:blue")
            for i, m in enumerate(sampled)
        ),
        Generated("greedy", "LSTM greedy", request.greedy.describe(), melody(greedy), "tab:red"),
        *(
            Generated(
                f"{order}-gram sample {i + 1}",
                f"{order}-gram sample",
                how,
                melody(m),
                "tab:orange",
                audio=False,
            )
            for i, m in enumerate(ngram)
        ),
    ]
