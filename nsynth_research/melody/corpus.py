"""Tunes from music21's bundled ABC corpora, parsed once in parallel and cached as tokens.

music21 parses about 25 tunes a second on one core, so a corpus is parsed once, tune by tune
in worker processes (spawned, not forked: the parent may already hold TensorFlow's threads),
with a progress bar, and the events are cached as gzipped JSON under `corpus.cache_dir`. The
cache file name is a hash of everything that changes its contents (corpus, subset, music21
version, tokeniser settings, PARSE_VERSION), so a change never reuses stale tokens, and it is
written atomically so a killed parse never leaves a torn cache behind. Only monophonic tunes
are kept; tunes that fail to parse, hold chords or several voices, or have no notes are
skipped and counted.

Accidentals follow the ABC 2.1 rule: an explicit accidental holds for later notes of the same
letter and octave up to the next barline (a line end is no barline), and a tie carries it over
one. music21 applies that rule only to text it is told is ABC 2.x, so `parse_abc` says so.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import multiprocessing
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import music21
from tqdm.auto import tqdm

from nsynth_research.core.errors import DataError, UserError
from nsynth_research.core.files import atomic_write_bytes
from nsynth_research.melody.config import CorpusConfig, TokenConfig
from nsynth_research.melody.metre import Key, Metre, parse_metre, stream_meta
from nsynth_research.melody.tokens import REST, Event, quantize

log = logging.getLogger(__name__)

#: Bumped whenever parsing changes what a cached tune holds, so old caches are not reused.
PARSE_VERSION = 3
#: Read before a tune: music21 reads ABC without a version line as 1.3, whose accidentals hold
#: for one note only; `octave` scopes a carried accidental to one letter in one octave.
ABC_STANDARD = "%abc-2.1\n%%propagate-accidentals octave\n"
CORPUS_DIRS = {"essen": "essenFolksong", "oneills": "oneills1850", "ryans": "ryansMammoth"}
_TUNE_START = re.compile(r"(?m)^(?=X:)")


class PolyphonicError(UserError):
    """A stream with chords or several sounding voices: this model continues one line."""


@dataclass(frozen=True)
class Tune:
    """One monophonic tune as events, with the facts generation and transposition need."""

    id: str
    title: str
    events: tuple[Event, ...]
    #: Pitch class of the written key's tonic (None when the tune names no key).
    tonic: int | None
    #: Length of a bar in quarters (None when the tune has no meter).
    bar: Fraction | None
    #: Time signature as written (`2/4`; None when the tune has no meter).
    metre: str | None = None
    #: Mode of the written key (`major`, `minor`, ...; None when the tune names no key).
    mode: str | None = None
    #: Length of the anacrusis before the first barline in quarters (0: none).
    pickup: Fraction = Fraction(0)

    @property
    def key(self) -> Key | None:
        return None if self.tonic is None else Key(self.tonic, self.mode or "major")

    @property
    def time_signature(self) -> Metre | None:
        return None if self.metre is None else parse_metre(self.metre)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "events": [[e.pitch, str(e.duration)] for e in self.events],
            "tonic": self.tonic,
            "bar": None if self.bar is None else str(self.bar),
            "metre": self.metre,
            "mode": self.mode,
            "pickup": str(self.pickup),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tune:
        return cls(
            id=d["id"],
            title=d["title"],
            events=tuple(Event(int(p), Fraction(q)) for p, q in d["events"]),
            tonic=d["tonic"],
            bar=None if d["bar"] is None else Fraction(d["bar"]),
            metre=d.get("metre"),
            mode=d.get("mode"),
            pickup=Fraction(d.get("pickup", "0")),
        )


@dataclass(frozen=True)
class ParsedCorpus:
    tunes: tuple[Tune, ...]
    #: Why tunes were skipped -> how many (failed, polyphonic, empty).
    skipped: dict[str, int] = field(default_factory=dict)
    key: str = ""


def stream_events(
    stream: music21.stream.Stream, tokens: TokenConfig
) -> tuple[list[Event], int | None, Fraction | None]:
    """Events, tonic pitch class and bar length of a parsed music21 stream.

    Ties are merged into one event (a tied note is one sounding note), grace notes (no
    duration) are dropped, and a chord or a second voice is a PolyphonicError.
    """
    parts = [p for p in getattr(stream, "parts", []) if p.flatten().notes]
    if len(parts) > 1:
        raise PolyphonicError(f"{len(parts)} parts with notes; a primer must be one melody")
    flat = stream.stripTies().flatten()
    if any(v for v in flat.getElementsByClass(music21.stream.Voice)):
        raise PolyphonicError("several voices in one part; a primer must be one melody")
    events: list[Event] = []
    end = Fraction(0)
    for item in flat.notesAndRests:
        dur = quantize(item.quarterLength, tokens.max_denominator)
        if dur <= 0:
            continue
        if item.isChord:
            raise PolyphonicError(f"a chord at offset {item.offset}; primers must be monophonic")
        start = Fraction(item.offset).limit_denominator(tokens.max_denominator * 8)
        if item.isNote and start < end:
            raise PolyphonicError(f"overlapping notes at offset {item.offset}")
        end = max(end, start + dur)
        if item.isRest:
            pitch = REST
        elif isinstance(item, music21.note.Note):
            pitch = int(item.pitch.midi)
        else:  # chords were refused above; what is left has no pitch (percussion)
            raise UserError(f"an unpitched note at offset {item.offset}; a melody needs pitches")
        if pitch == REST and not tokens.rests:
            if events:  # the rest lengthens the note before it
                events[-1] = Event(events[-1].pitch, events[-1].duration + dur)
            continue
        if pitch == REST and events and events[-1].pitch == REST:
            events[-1] = Event(REST, events[-1].duration + dur)
            continue
        events.append(Event(pitch, dur))
    meta = stream_meta(stream)
    tonic = None if meta.key is None else meta.key.tonic
    return events, tonic, None if meta.metre is None else meta.metre.bar


def parse_abc(text: str) -> music21.stream.Score | music21.stream.Part | music21.stream.Opus:
    """ABC text as music21 reads it under the ABC 2.1 accidental rule. A tie over a barline
    keeps its first note's accidental because `stream_events` merges tied notes into that one;
    a `%%propagate-accidentals` line in the text itself overrides the octave scope."""
    return music21.converter.parseData(ABC_STANDARD + text, format="abc")


def _parse_tune(job: tuple[str, str, TokenConfig]) -> tuple[str, dict[str, Any] | str]:
    """Worker: one ABC tune text -> ("ok", tune json) or (reason skipped, message)."""
    tune_id, text, tokens = job
    try:
        score = parse_abc(text)
    except Exception as exc:  # music21 raises many types for malformed ABC; each is counted
        return "failed", f"{tune_id}: {type(exc).__name__}: {exc}"
    try:
        events, tonic, bar = stream_events(score, tokens)
    except PolyphonicError as exc:
        return "polyphonic", f"{tune_id}: {exc}"
    if not any(e.pitch != REST for e in events):
        return "empty", tune_id
    title = str(score.metadata.title) if score.metadata and score.metadata.title else tune_id
    meta = stream_meta(score)
    metre = None if meta.metre is None else meta.metre.ratio
    mode = None if meta.key is None else meta.key.mode
    tune = Tune(tune_id, title, tuple(events), tonic, bar, metre, mode, meta.pickup)
    return "ok", tune.to_json()


def corpus_files(cfg: CorpusConfig) -> list[Path]:
    folder = Path(music21.__file__).parent / "corpus" / CORPUS_DIRS[cfg.name]
    files = sorted(folder.glob("*.abc"))
    if not cfg.files:
        return files
    by_stem = {f.stem: f for f in files}
    missing = [s for s in cfg.files if s not in by_stem]
    if missing:
        raise DataError(
            f"corpus.files: {', '.join(missing)} not in music21's {cfg.name} corpus "
            f"({folder}); e.g. {', '.join(list(by_stem)[:5])}"
        )
    return [by_stem[s] for s in cfg.files]


def split_abc(path: Path) -> list[tuple[str, str]]:
    """(tune id, text) of each `X:` tune of an ABC file; a file header before the first
    tune (defaults such as L:) is repeated inside every tune."""
    text = path.read_text(encoding="utf-8", errors="replace")
    head, *tunes = _TUNE_START.split(text)
    header = "\n".join(
        line for line in head.splitlines() if re.match(r"^[A-Za-z]:", line) and line[0] != "X"
    )
    out = []
    for i, tune in enumerate(tunes):
        first, _, rest = tune.partition("\n")
        number = first[2:].strip() or str(i)
        body = f"{first}\n{header}\n{rest}" if header else tune
        out.append((f"{path.stem}#{i}:{number}", body))
    return out


def cache_key(cfg: CorpusConfig, tokens: TokenConfig) -> str:
    """Hash of everything that changes the cached events (not min_count: that is the
    vocabulary's business, applied after the cache)."""
    ident = {
        "corpus": cfg.name,
        "files": list(cfg.files),
        "max_tunes": cfg.max_tunes,
        "music21": music21.__version__,
        "max_denominator": tokens.max_denominator,
        "rests": tokens.rests,
        "parse_version": PARSE_VERSION,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(cfg: CorpusConfig, tokens: TokenConfig) -> Path:
    return Path(cfg.cache_dir) / f"{cfg.name}-{cache_key(cfg, tokens)}.json.gz"


def load_corpus(cfg: CorpusConfig, tokens: TokenConfig, *, progress: bool = True) -> ParsedCorpus:
    """The cached tokenised corpus, parsed first (in parallel) if the cache is missing."""
    path = cache_path(cfg, tokens)
    if path.is_file():
        data = json.loads(gzip.decompress(path.read_bytes()))
        return ParsedCorpus(
            tuple(Tune.from_json(t) for t in data["tunes"]), data["skipped"], data["key"]
        )
    jobs = [(tid, text, tokens) for f in corpus_files(cfg) for tid, text in split_abc(f)]
    jobs = jobs[: cfg.max_tunes]
    workers = min(cfg.workers or os.cpu_count() or 1, max(1, len(jobs) // 8))
    skipped: Counter[str] = Counter()
    tunes: list[Tune] = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pool.map(_parse_tune, jobs, chunksize=8)
        for status, payload in tqdm(
            results, total=len(jobs), desc=f"parsing {cfg.name}", disable=not progress
        ):
            if status == "ok":
                tunes.append(Tune.from_json(payload))
            else:
                skipped[status] += 1
                log.debug("skipped (%s): %s", status, payload)
    if not tunes:
        raise DataError(f"no monophonic tune parsed from {cfg.name} {list(cfg.files)}")
    key = cache_key(cfg, tokens)
    data = {"key": key, "skipped": dict(skipped), "tunes": [t.to_json() for t in tunes]}
    atomic_write_bytes(path, gzip.compress(json.dumps(data).encode(), mtime=0))
    log.info(
        "%s: %d tunes kept, skipped %s; cached in %s", cfg.name, len(tunes), dict(skipped), path
    )
    return ParsedCorpus(tuple(tunes), dict(skipped), key)
