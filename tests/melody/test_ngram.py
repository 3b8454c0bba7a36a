import math

import numpy as np
import pytest

from nsynth_research.melody.ngram import NGramModel, perplexity
from nsynth_research.melody.tokens import BOS_ID

# ids 2..4 are events (0 UNK, 1 BOS): vocabulary of 5
V = 5


def test_unigram_is_add_one_over_events():
    model = NGramModel(1, V).fit([[2, 2, 3]])
    # 3 events seen, 4 possible targets (every id but BOS): (c + 1) / (3 + 4)
    assert model.prob([], 2) == pytest.approx(3 / 7)
    assert model.prob([], 4) == pytest.approx(1 / 7)
    nll = model.tune_nll([2, 3])
    assert perplexity([nll]) == pytest.approx(math.exp(-(math.log(3 / 7) + math.log(2 / 7)) / 2))


def test_bigram_on_a_toy_sequence_matches_witten_bell_by_hand():
    model = NGramModel(2, V).fit([[2, 3, 2, 3]])
    # after 2: seen 3 twice, one type -> (2 + 1 * P1(3)) / (2 + 1); P1(3) = (2+1)/(4+4)
    assert model.prob([2], 3) == pytest.approx((2 + 3 / 8) / 3)
    # an unseen context falls back to the unigram
    assert model.prob([4], 3) == pytest.approx(3 / 8)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_order_is_a_distribution_over_events(order):
    model = NGramModel(order, V).fit([[2, 3, 4, 2, 3, 3], [4, 4, 2]])
    for context in ([], [BOS_ID, BOS_ID, BOS_ID, BOS_ID], [2, 3], [3, 3, 4, 2]):
        total = sum(model.prob(context, t) for t in range(V) if t != BOS_ID)
        assert total == pytest.approx(1.0)


def test_higher_orders_win_on_a_repeating_melody():
    tune = [2, 3, 4] * 20
    ppl = {n: perplexity([NGramModel(n, V).fit([tune]).tune_nll(tune)]) for n in (1, 2, 3)}
    assert ppl[3] < ppl[2] < ppl[1]
    assert ppl[1] == pytest.approx(3.0, rel=0.1)  # three equally common events
    assert np.isfinite(list(ppl.values())).all()
