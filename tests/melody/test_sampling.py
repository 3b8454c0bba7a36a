"""The chooser's options on distributions with known answers: top-k, nucleus, temperature 0,
the repetition guard, the bar-filling masks and the calibration to corpus rates."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from nsynth_research.core.errors import UserError
from nsynth_research.melody.calibration import KINDS, BarlineRates, Calibration, KeyRate
from nsynth_research.melody.corpus import Tune
from nsynth_research.melody.metre import Key, Metre
from nsynth_research.melody.ngram import NGramModel
from nsynth_research.melody.sampling import (
    Plan,
    SamplingOptions,
    check_request,
    choose,
    continue_batch,
    nucleus_mask,
    project,
    repeated_figures,
    top_k_mask,
)
from nsynth_research.melody.stats import Melody, melody_stats
from nsynth_research.melody.tokens import BOS_ID, Vocabulary, parse_events

PROBS = np.array([[0.0, 0.0, 0.5, 0.3, 0.15, 0.05]])  # ids 0, 1 are UNK and BOS


def test_top_k_keeps_the_k_likeliest():
    logits = np.log(np.where(PROBS > 0, PROBS, 1e-300))
    logits[:, :2] = -np.inf
    assert top_k_mask(logits, 2).tolist() == [[False, False, True, True, False, False]]
    assert top_k_mask(logits, 0).sum() == 4  # off


@pytest.mark.parametrize(
    "p,kept",
    [(0.5, [2]), (0.6, [2, 3]), (0.8, [2, 3]), (0.81, [2, 3, 4]), (0.96, [2, 3, 4, 5])],
)
def test_nucleus_is_the_smallest_set_reaching_p(p, kept):
    assert np.flatnonzero(nucleus_mask(PROBS, p)[0]).tolist() == kept


def _draws(options: SamplingOptions, n: int = 4000) -> Counter[int]:
    logits = np.log(np.where(PROBS > 0, PROBS, 1e-300)).repeat(n, axis=0)
    logits[:, :2] = -np.inf
    return Counter(choose(logits, options, np.random.default_rng(0)).tolist())


def test_sampling_follows_the_distribution_and_options_cut_its_tail():
    plain = _draws(SamplingOptions(1.0))
    assert set(plain) == {2, 3, 4, 5}
    assert plain[2] / 4000 == pytest.approx(0.5, abs=0.03)
    assert set(_draws(SamplingOptions(1.0, top_k=2))) == {2, 3}
    nucleus = _draws(SamplingOptions(1.0, top_p=0.6))
    assert set(nucleus) == {2, 3} and nucleus[2] / 4000 == pytest.approx(0.625, abs=0.03)
    assert set(_draws(SamplingOptions(0.0))) == {2}
    assert _draws(SamplingOptions(0.3))[2] > plain[2]  # a low temperature sharpens


def test_repetition_guard_bans_the_event_that_would_repeat_a_figure():
    assert np.flatnonzero(repeated_figures([5, 6, 7, 5, 6], 3, 10)).tolist() == [7]
    assert np.flatnonzero(repeated_figures([4, 4, 4], 2, 10)).tolist() == [4]
    assert not repeated_figures([5, 6, 7], 3, 10).any()


VOCAB = Vocabulary.build([parse_events("C5/1 D5/1 E5/1 G5/1 C5/2 R/1")])


def _fixed(pitch_token: str):
    """A 'network' that always prefers one event strongly."""
    logits = np.zeros(len(VOCAB))
    logits[VOCAB.index[pitch_token]] = 10.0
    return lambda windows: np.tile(logits, (len(windows), 1))


def test_greedy_repeats_one_note_without_the_guard_and_not_with_it():
    kwargs = {"sequence_length": 4, "rng": np.random.default_rng(0)}
    plan = Plan((VOCAB.index["C5/1"],), Fraction(16), Fraction(2))
    (plain,) = continue_batch(_fixed("C5/1"), VOCAB, [plan], SamplingOptions(0.0), **kwargs)
    assert [e.pitch for e in plain] == [72] * 16
    guarded = SamplingOptions(0.0, no_repeat_ngram=2)
    short = Plan(plan.primer_ids, Fraction(6), Fraction(2))
    (out,) = continue_batch(_fixed("C5/1"), VOCAB, [short], guarded, **kwargs)
    assert sum(e.duration for e in out) == 6
    melody = [VOCAB.encode([e]).ids[0] for e in out]
    pairs = list(zip([VOCAB.index["C5/1"], *melody], melody, strict=False))
    assert len(set(pairs)) == len(pairs)  # no two-event figure twice, primer included
    assert max(Counter(melody).values()) < 6


def test_projection_gives_a_class_its_share_and_keeps_preferences_inside():
    probs = np.array([[0.0, 0.0, 0.4, 0.4, 0.1, 0.1]])
    members = np.array([[[False, False, False, False, True, True]]])
    out = project(probs, members, np.array([[0.5]]))
    assert out[0].tolist() == pytest.approx([0, 0, 0.25, 0.25, 0.25, 0.25])
    # a class with no probability, or all of it, is left alone
    none = np.zeros_like(members)
    assert project(probs, none, np.array([[0.5]]))[0].tolist() == pytest.approx(probs[0])
    # greedy picks from the projected distribution: the class wins once it holds 60%
    logits = np.log(np.where(probs > 0, probs, 1e-300))
    assert choose(logits, SamplingOptions(0.0), np.random.default_rng(0))[0] == 2
    share = np.array([[0.6]])
    picked = choose(logits, SamplingOptions(0.0), np.random.default_rng(0), members, share)
    assert picked[0] in (4, 5)


TUNE_24 = "C5/1 D5/1 C5/2 E5/1 G5/1 E5/1/2 D5/1/2 C5/1"


def test_barline_rates_count_crossings_by_position_with_the_anacrusis():
    # 2/4 with a one-beat pickup (C5): the half note C5/2 starts on beat 2 and is tied over
    # the barline; everything else stays inside its bar.
    tune = Tune("t", "", tuple(parse_events(TUNE_24)), 0, Fraction(2), "2/4", "major", Fraction(1))
    rates = BarlineRates.fit([tune])
    assert rates.starts["2/4"] == {Fraction(1): 4, Fraction(0): 3, Fraction(3, 2): 1}
    assert rates.crossing["2/4"] == Counter({Fraction(1): 1})
    vocab = Vocabulary.build([parse_events(TUNE_24)])
    constraint = rates.constraint(Metre(2, 4), vocab)
    members, share = constraint.at(Fraction(1))
    half, quarter = vocab.index["C5/2"], vocab.index["C5/1"]
    assert members[half] and not members[quarter]
    assert share == pytest.approx((1 + 1 / 8) / (4 + 1))  # smoothed towards 1 in 8 overall
    assert constraint.at(Fraction(0))[1] == pytest.approx((0 + 1 / 8) / (3 + 1))
    assert not constraint.at(Fraction(0))[0][half]  # a half note from the downbeat fits
    assert rates.constraint(Metre(3, 4), vocab) is None


def test_key_rate_counts_notes_outside_the_signature():
    in_c = Tune("c", "", tuple(parse_events("C5/1 D5/1 F#5/1 G5/1")), 0, None)
    in_g = Tune("g", "", tuple(parse_events("G5/1 F#5/1 F5/1 D5/1")), 7, None)
    in_f = Tune("f", "", tuple(parse_events("F5/1 R/1 A5/1")), 5, None)  # a rest is no note
    keyless = Tune("x", "", tuple(parse_events("C#5/1")), None, None)
    rate = KeyRate.fit([in_c, in_g, in_f, keyless])
    assert (rate.outside, rate.events) == (2, 11)  # F#5 in C, F5 in G
    vocab = Vocabulary.build([parse_events("C5/1 C#5/1 F5/1 F#5/1 R/1")])
    members, share = rate.constraint(Key(7), Fraction(4), vocab).at(Fraction(0))
    assert share == pytest.approx(3 / 13)
    assert {vocab.tokens[i] for i in np.flatnonzero(members)} == {"C#5/1", "F5/1"}


def test_calibrated_sampling_meets_the_corpus_rates():
    """A network that knows nothing (uniform) crosses barlines and leaves the key often;
    calibrated, it does so about as rarely as the corpus (which never does)."""
    vocab = Vocabulary.build([parse_events("C5/1 D5/1 E5/1 C#5/1 D#5/1 C5/2 D5/2 C5/3 R/1")])
    phrase = tuple(parse_events("C5/1 D5/1 E5/1 D5/1 C5/2") * 4)
    corpus = [Tune(f"t{i}", "", phrase, 0, Fraction(2), "2/4", "major") for i in range(5)]
    constraints = Calibration.fit(corpus).constraints(KINDS, Metre(2, 4), Key(0), vocab)
    plain = Plan((vocab.index["C5/1"],), Fraction(32), Fraction(2))
    calibrated = Plan(plain.primer_ids, plain.length, plain.bar, constraints=constraints)

    def uniform(windows):
        return np.zeros((len(windows), len(vocab)))

    def rates(plan):
        out = continue_batch(
            uniform,
            vocab,
            [plan] * 30,
            SamplingOptions(1.0),
            sequence_length=4,
            rng=np.random.default_rng(3),
        )
        stats = [melody_stats(Melody(tuple(m), Key(0), Fraction(2))) for m in out]
        return [np.mean([s[k] for s in stats]) for k in ("across_barline", "out_of_key")]

    assert min(rates(plain)) > 0.15
    assert max(rates(calibrated)) < 0.03


def test_ngram_steps_are_its_probabilities():
    model = NGramModel(3, 6).fit([[2, 3, 4, 2, 3, 5]])
    dist = np.exp(model.step(np.array([[BOS_ID, 2, 3]]))[0])
    assert dist[BOS_ID] == 0
    assert dist.sum() == pytest.approx(1.0)
    assert dist[4] == pytest.approx(model.prob([2, 3], 4))


@pytest.mark.parametrize(
    "options,message",
    [
        (SamplingOptions(-1.0), "TEMPERATURE"),
        (SamplingOptions(1.0, top_k=-2), "TOP_K"),
        (SamplingOptions(1.0, top_p=0.0), "TOP_P"),
        (SamplingOptions(1.0, top_p=1.5), "TOP_P"),
        (SamplingOptions(0.0, no_repeat_ngram=1), "REPEAT_GUARD"),
    ],
)
def test_bad_options_are_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        check_request(4, options)
    with pytest.raises(UserError, match="BARS=0"):
        check_request(0, SamplingOptions())
