from fractions import Fraction

import numpy as np
import pytest

from nsynth_research.melody.config import MelodyConfig
from nsynth_research.melody.corpus import ParsedCorpus, Tune
from nsynth_research.melody.data import MelodyData, data_settings
from nsynth_research.melody.model import build_model
from nsynth_research.melody.sampling import Plan, SamplingOptions, continue_batch, fillable
from nsynth_research.melody.tokens import Vocabulary, parse_events
from nsynth_research.melody.training import score_tunes, train

PHRASE = "C4/1 D4/1/2 E4/1/2 F4/1 G4/1 E4/2 C4/2"


def _data(config: MelodyConfig) -> MelodyData:
    events = tuple(parse_events(PHRASE) * 12)
    tunes = [Tune(f"t{i}", "", events, 0, Fraction(4)) for i in range(4)]
    vocab = Vocabulary.build([t.events for t in tunes])
    return MelodyData(
        splits={"train": tunes[:3], "valid": tunes[3:], "test": []},
        vocab=vocab,
        corpus=ParsedCorpus(tuple(tunes)),
        settings=data_settings(config),
    )


@pytest.mark.slow
def test_a_small_lstm_learns_a_repeating_melody():
    config = MelodyConfig.model_validate(
        {
            "model": {"layers": 1, "units": 32, "sequence_length": 4, "dropout": 0.0},
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "training": {"epochs": 6, "batch_size": 16, "early_stopping_patience": None},
        }
    )
    data = _data(config)
    result = train(config, data, verbose=0)
    losses = result.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    # 6 distinct events: chance is 1/6; the phrase is fully predictable from 4 events
    assert result.history["val_accuracy"][result.best_epoch] > 0.9
    assert result.objective == pytest.approx(np.exp(min(result.history["val_loss"])))
    assert result.history["val_perplexity"][result.best_epoch] == pytest.approx(result.objective)
    scores = score_tunes(result.model, data.splits["valid"], data.vocab, 4)
    assert len(scores.nll) == 1 and len(scores.nll[0]) == len(data.splits["valid"][0].events)
    assert np.exp(scores.nll[0].mean()) == pytest.approx(result.objective, rel=1e-3)


def test_fillable_knows_which_remainders_durations_can_fill():
    ok = fillable(Fraction(1), [Fraction(1, 2), Fraction(1, 3)])
    assert ok[Fraction(1)] and ok[Fraction(5, 6)] and ok[Fraction(2, 3)]
    assert not ok[Fraction(1, 6)]


@pytest.mark.parametrize("bars,bar", [(1, Fraction(4)), (3, Fraction(3)), (8, Fraction(3, 2))])
def test_generation_fills_exactly_the_requested_bars(bars, bar):
    config = MelodyConfig.model_validate({"model": {"layers": 1, "units": 8}})
    vocab = Vocabulary.build([parse_events("C4/1 D4/1/3 E4/1/2 F4/3/2 G4/2 R/1/4")])
    model = build_model(config.model, len(vocab))  # untrained: any distribution must fit
    plans = [Plan(tuple(vocab.encode_strict(parse_events("C4/1"))), bars * bar, bar)] * 3
    out = continue_batch(
        lambda w: np.asarray(model(w, training=False)),
        vocab,
        plans,
        SamplingOptions(temperature=1.5),
        sequence_length=8,
        rng=np.random.default_rng(0),
    )
    assert [sum(e.duration for e in m) for m in out] == [bars * bar] * 3
