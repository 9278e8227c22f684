"""The continuous request flow (a streaming backend, answers committed as they arrive) gives the same bytes
as the batch flow (the openai backend's window: tests/backends/test_openai_backend.py)."""
from __future__ import annotations

import pytest

from engine_testlib import write_pipeline
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.manifest import output_paths
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.engine.stage import StageError


def scripted(flow):
    return {"gen": {"backend": "scripted", "model": "fake/model", "revision": "r1", "batch_size": 3, "flow": flow,
                    "options": {"responder": "engine_plugins:reverse_responder"}}}


def test_continuous_flow_is_byte_identical_to_the_batch_flow(tmp_path):
    outputs = {}
    for flow in ("batch", "continuous"):
        m = run_local(load_pipeline(write_pipeline(tmp_path / flow, models=scripted(flow))), tmp_path / f"w-{flow}",
                      RunOptions(progress=False))
        outputs[flow] = [open(p, "rb").read() for p in output_paths(m, tmp_path / f"w-{flow}")]
        answer = next(s for s in m["stages"] if s["label"] == "answer")
        assert answer["usage"]["requests"] == 23 and answer["dropped"] == {"generation_length": 1}
    assert outputs["batch"] == outputs["continuous"] and len(outputs["batch"]) == 4


def test_an_unknown_flow_is_a_configuration_error(tmp_path):
    with pytest.raises(StageError, match="field 'flow' must be one of continuous, batch"):
        load_pipeline(write_pipeline(tmp_path / "p", models=scripted("eventually")))
