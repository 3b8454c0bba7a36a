"""Reproducing a logged run from its config alone gives the same validation accuracy."""

from __future__ import annotations

import mlflow
import pytest

from nsynth_research.core.errors import UserError
from nsynth_research.core.reproduce import REPRODUCES_TAG, reproduce
from nsynth_research.core.tracking import open_store, tracked_run
from nsynth_research.tasks import task_for

pytestmark = pytest.mark.slow


def test_reproduction_is_identical_and_tagged(tiny_run) -> None:
    config, run_id = tiny_run
    said: list[str] = []
    result = reproduce(task_for, run_id, config.tracking, announce=said.append)
    assert result.identical
    original, again = result.rows[0][1], result.rows[0][2]
    assert original == again
    assert [r[1] for r in result.rows] == pytest.approx([r[2] for r in result.rows])
    run = open_store(config.tracking).get_run(result.run_id)
    assert run.data.tags[REPRODUCES_TAG] == run_id
    assert not any("data fingerprint" in w for w in said)
    assert "identical" in result.format_table()


def test_unknown_run_and_run_without_config(tiny_run) -> None:
    config, _ = tiny_run
    with pytest.raises(UserError, match="no run 'feedfacefeedface'"):
        reproduce(task_for, "feedfacefeedface", config.tracking)
    with tracked_run(config.tracking, run_name="bare") as bare:
        mlflow.log_metric("x", 1.0)
    with pytest.raises(UserError, match=r"has no config\.yaml"):
        reproduce(task_for, bare.info.run_id, config.tracking)
