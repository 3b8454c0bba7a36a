"""NSynth's one WAV shape (RIFF, 16-bit PCM, mono), parsed and decoded without libsndfile.

Reading a .tar.gz in place hands each note over as bytes; libsndfile through a BytesIO then
costs more per note than inflating it did, so bytes of this shape are parsed here (a few
microseconds) and anything else (24-bit, float, extensible headers) is left to soundfile.
Values are exactly soundfile's and `tf.audio.decode_wav`'s: int16 / 32768, a power of two.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

#: WAVE format tag of plain integer PCM.
PCM = 1


@dataclass(frozen=True)
class Pcm16:
    """Where a 16-bit PCM WAV's samples sit in its bytes, and its format."""

    rate: int
    channels: int
    frames: int
    offset: int


def parse_pcm16(data: bytes) -> Pcm16 | None:
    """The header of a 16-bit PCM WAV, or None for any other (or malformed) file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            if size < 16 or body + 16 > len(data):
                return None
            tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (tag, channels, rate, bits)
            if tag != PCM or bits != 16 or channels < 1 or block != 2 * channels:
                return None
        elif chunk == b"data":
            if fmt is None:
                return None
            size = min(size, len(data) - body)
            channels = fmt[1]
            return Pcm16(rate=fmt[2], channels=channels, frames=size // (2 * channels), offset=body)
        pos = body + size + (size & 1)  # chunks are padded to even sizes
    return None


def decode_pcm16(data: bytes, header: Pcm16, frames: int) -> np.ndarray:
    """The first channel's first `frames` samples as float32 in [-1, 1)."""
    pcm = np.frombuffer(data, "<i2", count=frames * header.channels, offset=header.offset)
    return pcm[:: header.channels].astype(np.float32) * np.float32(1 / 32768)
