"""A stop asked of the process is reported as a stop, whatever exception it surfaced as: a
SIGTERM raised inside TensorFlow's C++ code can come out as a SystemError."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import pytest

from nsynth_research import cli
from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.interrupts import STOPS, Stops, Terminated
from nsynth_research.core.tracking import open_store, tracked_run


def test_an_error_after_a_stop_is_the_stop_and_before_it_is_itself() -> None:
    stops = Stops()
    error = SystemError("Objects/listobject.c:338: bad argument to internal function")
    assert stops.surfaced(error) is error
    stops.asked = Terminated("SIGTERM")
    assert stops.surfaced(error) is stops.asked
    ctrl_c = KeyboardInterrupt()
    assert stops.surfaced(ctrl_c) is ctrl_c  # already a stop: kept as it came


def test_a_run_whose_stop_surfaced_as_another_error_is_closed_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = TrackingConfig(store=tmp_path / "mlruns", experiment="unit")
    monkeypatch.setattr(STOPS, "asked", Terminated("SIGTERM"))
    with pytest.raises(Terminated) as raised, tracked_run(cfg) as run:
        raise SystemError("Objects/listobject.c:338: bad argument to internal function")
    assert isinstance(raised.value.__cause__, SystemError)
    got = open_store(cfg).get_run(run.info.run_id)
    assert got.data.tags["state"] == "INTERRUPTED" and got.info.status == "FAILED"


def test_the_command_line_exits_as_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM delivered for real through the installed handler, then a SystemError in
    its place (as TensorFlow's step can turn it): exit 143 with the one interrupt line."""
    monkeypatch.setattr(STOPS, "asked", None)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def command(args) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()  # the handler raises here
        except Terminated:
            raise SystemError("bad argument to internal function") from None
        return 0

    class Parser:
        def parse_args(self, argv):
            return argparse.Namespace(verbose=False, func=command)

    monkeypatch.setattr(cli, "build_parser", Parser)
    try:
        assert cli.main([]) == 143
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert "interrupted by SIGTERM" in capsys.readouterr().err
