from fractions import Fraction

import music21
import pytest

from nsynth_research.melody import corpus
from nsynth_research.melody.config import CorpusConfig, TokenConfig
from nsynth_research.melody.corpus import (
    PolyphonicError,
    cache_path,
    load_corpus,
    split_abc,
    stream_events,
)
from nsynth_research.melody.tokens import REST, event_token

ABC = """X:1
T:test
M:4/4
L:1/8
K:G
G2 A2 B4- | B2 z2 d2 (3efg | c8 |]
"""


def test_abc_to_events_merges_ties_and_keeps_rests_and_triplets():
    score = music21.converter.parseData(ABC, format="abc")
    events, tonic, bar = stream_events(score, TokenConfig())
    tokens = [event_token(e) for e in events]
    assert tokens == [
        "G4/1", "A4/1", "B4/3", "R/1", "D5/1", "E5/1/3", "F#5/1/3", "G5/1/3", "C5/4",
    ]  # fmt: skip
    assert tonic == 7 and bar == Fraction(4)
    assert sum(e.duration for e in events) == 12


def test_rests_off_lengthen_the_previous_note():
    score = music21.converter.parseData(ABC, format="abc")
    events, _, _ = stream_events(score, TokenConfig(rests=False))
    assert all(e.pitch != REST for e in events)
    assert events[2].duration == 4  # B4 tied (3 quarters) + the quarter rest


def test_chords_are_polyphonic():
    score = music21.converter.parseData(ABC.replace("c8", "[ceg]8"), format="abc")
    with pytest.raises(PolyphonicError):
        stream_events(score, TokenConfig())


def test_split_abc_finds_every_tune(tmp_path):
    path = tmp_path / "two.abc"
    path.write_text("% header\nL:1/8\n\n" + ABC + "\n" + ABC.replace("X:1", "X:2"))
    tunes = split_abc(path)
    assert [t[0] for t in tunes] == ["two#0:1", "two#1:2"]
    assert all("L:1/8" in text for _, text in tunes)


def test_corpus_is_parsed_once_then_read_from_cache(tmp_path):
    cfg = CorpusConfig(files=("teste",), cache_dir=tmp_path, workers=2)
    first = load_corpus(cfg, TokenConfig(), progress=False)
    assert len(first.tunes) + sum(first.skipped.values()) == 8
    path = cache_path(cfg, TokenConfig())
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    again = load_corpus(cfg, TokenConfig(), progress=False)
    assert again.tunes == first.tunes and path.stat().st_mtime_ns == mtime
    # another tokeniser setting is another cache file, never the stale one
    assert cache_path(cfg, TokenConfig(max_denominator=4)) != path


def test_a_new_parse_version_is_a_new_cache_file(tmp_path, monkeypatch):
    cfg = CorpusConfig(files=("teste",), cache_dir=tmp_path)
    path = cache_path(cfg, TokenConfig())
    monkeypatch.setattr(corpus, "PARSE_VERSION", corpus.PARSE_VERSION + 1)
    assert cache_path(cfg, TokenConfig()) != path


def test_corpus_tunes_carry_accidentals_to_the_barline(tmp_path):
    cfg = CorpusConfig(files=("teste",), cache_dir=tmp_path, workers=2)
    tunes = {t.id: t for t in load_corpus(cfg, TokenConfig(), progress=False).tunes}

    def pitch_classes(tune_id: str) -> set[int]:
        return {e.pitch % 12 for e in tunes[tune_id].events if e.pitch != REST}

    # K:E with `=D`: the D after it in the bar, the D on the next line (a line end is no
    # barline) and the D tied from it over a barline are natural, never the key's D#
    assert 2 in pitch_classes("teste#3:4") and 3 not in pitch_classes("teste#3:4")
    # K:D with `=c2c`: the second c is natural too, never the key's C#
    assert 0 in pitch_classes("teste#4:5") and 1 not in pitch_classes("teste#4:5")
