"""Stops asked of the process (SIGTERM, Ctrl-C), remembered so that the exception they
surface as is known for what it is.

Python raises a signal handler's exception wherever the interpreter next checks for signals,
and TensorFlow checks while it runs a training step: raised inside its C++ code, the
interruption can come out as another exception (a SystemError from a half-built result
list). `surfaced` maps whatever escaped after a stop was asked back to that stop, so the
run and its trial are closed INTERRUPTED and the command exits as interrupted, instead of
reporting an internal error that the stop itself caused. Signals belong to the process, so
the record of them does too (`STOPS`).
"""

from __future__ import annotations

import signal
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every open run and trial is closed on the way out."""


class Stops:
    """The stop asked of this process, once one has been."""

    def __init__(self) -> None:
        self.asked: KeyboardInterrupt | None = None

    def install(self) -> None:
        """SIGTERM raises `Terminated`, Ctrl-C `KeyboardInterrupt` (as Python's own handler
        does); both are remembered first. Call from the main thread."""

        def on_term(signum: int, frame: FrameType | None) -> None:
            # One is enough: a second SIGTERM must not cut the clean-up of the first short.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.asked = Terminated("SIGTERM")
            raise self.asked

        def on_interrupt(signum: int, frame: FrameType | None) -> None:
            self.asked = KeyboardInterrupt()
            raise self.asked

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_interrupt)

    def surfaced(self, exc: BaseException) -> BaseException:
        """The stop, when `exc` escaped after one was asked; otherwise `exc` itself."""
        if self.asked is not None and not isinstance(exc, KeyboardInterrupt):
            return self.asked
        return exc


STOPS = Stops()
