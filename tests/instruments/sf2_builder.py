"""A minimal SoundFont 2 writer for tests: presets made of given mono 16-bit samples.

Enough of the SF2 spec (RIFF sfbk: INFO, sdta/smpl, pdta hydra) for sf2utils and
tinysoundfont to read it, so tests can build presets that share sample data on purpose.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

#: Generator operators (SF2 spec 8.1.2).
_INSTRUMENT, _SAMPLE_MODES, _SAMPLE_ID = 41, 54, 53
_GAP = 46  # zero frames the spec asks after every sample


def _chunk(tag: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return tag + struct.pack("<I", len(data)) + data + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode()[:19].ljust(20, b"\0")


def tone(seed: int, frames: int = 4000, rate: int = 44_100) -> np.ndarray:
    """A distinct looped waveform per seed: a few harmonics of 441 Hz with seeded weights."""
    weights = np.random.default_rng(seed).uniform(0.1, 1.0, 4)
    t = np.arange(frames) / rate
    wave = sum(w * np.sin(2 * np.pi * 441 * (k + 1) * t) for k, w in enumerate(weights))
    return np.round(0.5 * 32767 * wave / np.abs(wave).max()).astype(np.int16)


def write_sf2(
    path: Path, samples: list[np.ndarray], presets: dict[int, list[int]], rate: int = 44_100
) -> Path:
    """Write `path` with bank-0 presets: GM program -> indices of the samples it plays (one
    instrument per preset, one zone per sample, each looped over its whole length)."""
    smpl, headers, start = b"", b"", 0
    for i, data in enumerate(samples):
        data = np.asarray(data, "<i2")
        smpl += data.tobytes() + bytes(2 * _GAP)
        end = start + len(data)
        headers += struct.pack(
            "<20sIIIIIBbHH", _name(f"s{i}"), start, end, start + 8, end - 8, rate, 69, 0, 0, 1
        )
        start = end + _GAP
    headers += struct.pack("<20sIIIIIBbHH", _name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)

    phdr = pbag = pgen = inst = ibag = igen = b""
    n_pbag = n_pgen = n_ibag = n_igen = 0
    for index, (program, used) in enumerate(sorted(presets.items())):
        phdr += struct.pack("<20sHHHIII", _name(f"p{program}"), program, 0, n_pbag, 0, 0, 0)
        pbag += struct.pack("<HH", n_pgen, 0)
        pgen += struct.pack("<HH", _INSTRUMENT, index)
        n_pbag, n_pgen = n_pbag + 1, n_pgen + 1
        inst += struct.pack("<20sH", _name(f"i{program}"), n_ibag)
        for sample in used:
            ibag += struct.pack("<HH", n_igen, 0)
            igen += struct.pack("<HH", _SAMPLE_MODES, 1) + struct.pack("<HH", _SAMPLE_ID, sample)
            n_ibag, n_igen = n_ibag + 1, n_igen + 2
    phdr += struct.pack("<20sHHHIII", _name("EOP"), 0, 0, n_pbag, 0, 0, 0)
    pbag += struct.pack("<HH", n_pgen, 0)
    pgen += struct.pack("<HH", 0, 0)
    inst += struct.pack("<20sH", _name("EOI"), n_ibag)
    ibag += struct.pack("<HH", n_igen, 0)
    igen += struct.pack("<HH", 0, 0)
    no_mod = bytes(10)
    body = b"sfbk" + b"".join(
        [
            _list(
                b"INFO",
                _chunk(b"ifil", struct.pack("<HH", 2, 1)),
                _chunk(b"isng", b"EMU8000\0"),
                _chunk(b"INAM", b"test\0"),
            ),
            _list(b"sdta", _chunk(b"smpl", smpl)),
            _list(
                b"pdta",
                _chunk(b"phdr", phdr),
                _chunk(b"pbag", pbag),
                _chunk(b"pmod", no_mod),
                _chunk(b"pgen", pgen),
                _chunk(b"inst", inst),
                _chunk(b"ibag", ibag),
                _chunk(b"imod", no_mod),
                _chunk(b"igen", igen),
                _chunk(b"shdr", headers),
            ),
        ]
    )
    Path(path).write_bytes(_chunk(b"RIFF", body))
    return Path(path)
