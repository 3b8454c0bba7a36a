"""The ABC 2.1 accidental rule on hand-written tunes: an explicit accidental holds for later
notes of its letter and octave up to the barline, and a tie carries it over one."""

from nsynth_research.melody.config import TokenConfig
from nsynth_research.melody.corpus import parse_abc, stream_events
from nsynth_research.melody.tokens import event_token


def tokens(body: str, key: str = "C", meter: str = "4/4", header: str = "") -> str:
    text = f"X:1\nT:accidentals\n{header}M:{meter}\nL:1/4\nK:{key}\n{body}\n"
    events, _, _ = stream_events(parse_abc(text), TokenConfig())
    return " ".join(event_token(e) for e in events)


def test_an_accidental_holds_to_the_barline_and_no_further():
    assert tokens("^G A G G | G A B c") == "G#4/1 A4/1 G#4/1 G#4/1 G4/1 A4/1 B4/1 C5/1"


def test_an_accidental_holds_in_its_own_octave_only():
    assert tokens("^G g G g | g ^g G g") == "G#4/1 G5/1 G#4/1 G5/1 G5/1 G#5/1 G4/1 G#5/1"


def test_a_natural_cancels_an_accidental_for_the_rest_of_the_bar():
    assert tokens("_B B =B B | B4") == "A#4/1 A#4/1 B4/1 B4/1 B4/4"
    assert tokens("^F F =F F | ^F4") == "F#4/1 F#4/1 F4/1 F4/1 F#4/4"


def test_an_accidental_overrides_the_key_signature_until_the_barline():
    assert tokens("=F F G F | F4", key="G") == "F4/1 F4/1 G4/1 F4/1 F#4/4"
    assert tokens("=B B c B | B4", key="F") == "B4/1 B4/1 C5/1 B4/1 A#4/4"
    # a flat on a note the key sharpens flattens the natural note: C flat is B
    assert tokens("_c c d c | c4", key="D") == "B4/1 B4/1 D5/1 B4/1 C#5/4"


def test_a_tie_carries_an_accidental_over_the_barline_to_the_tied_note_only():
    # the tied G is sharp by the bar's ^G; the G after the tied one is natural again
    assert tokens("^G A G- | G G2", meter="3/4") == "G#4/1 A4/1 G#4/2 G4/2"


def test_a_line_end_is_no_barline():
    assert tokens("^G A\nG A | G4") == "G#4/1 A4/1 G#4/1 A4/1 G4/4"


def test_the_tunes_own_propagation_directive_wins():
    pitch_wide = "%%propagate-accidentals pitch\n"
    assert tokens("^G g G g | g4", header=pitch_wide) == "G#4/1 G#5/1 G#4/1 G#5/1 G5/4"


def test_an_abc_primer_file_reads_accidentals_as_the_corpus_does(tmp_path):
    from nsynth_research.melody.config import TokenConfig
    from nsynth_research.melody.primer import _read_file

    path = tmp_path / "primer.abc"
    path.write_text("X:1\nM:2/4\nL:1/8\nK:C\n^G A G A | G4 |]\n")
    primer = _read_file(path, TokenConfig())
    pitches = [e.pitch for e in primer.events]
    assert pitches[:4] == [68, 69, 68, 69]  # G#4 carried to the third note of the bar
    assert pitches[4] == 67  # and not past the barline
