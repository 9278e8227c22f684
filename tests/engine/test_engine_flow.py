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


@pytest.fixture
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)     # 2 shared cores: one OpenMP thread is ~10x faster (tests/backends/conftest.py)
    yield
    torch.set_num_threads(before)


def test_transformers_static_path_streams_shards_into_one_call(tmp_path, monkeypatch, one_torch_thread):
    """The real SmolLM2 on the static path. One shard at a time: the engine feeds each shard's misses to
    `generate_stream` in one call (no batches of batch_size). Shards in flight: later shards' requests join
    the running call (`more`), so there are fewer calls than shards. Every flow writes the batch flow's
    bytes."""
    from megascience_build.backends.transformers_backend import TransformersBackend

    stages = [{"stage": "test_tag_length", "label": "tag"},
              {"stage": "test_answer", "label": "answer", "llm": "gen", "prompts": {"ask": "ask.txt"},
               "sampling": {"max_tokens": 32, "stop": ["?", "."]}}]
    calls, joined = [], []
    real_stream = TransformersBackend.generate_stream

    def counting_stream(self, requests, more=None):
        calls.append(len(requests))

        def counted():
            new = more()
            joined.extend([len(new)] if new else [])
            return new

        yield from real_stream(self, requests, counted if more else None)

    outputs = {}
    for flow, in_flight in (("batch", 1), ("continuous", 1), ("continuous", 4)):
        models = {"gen": {"backend": "transformers", "model": "smollm2", "batch_size": 2, "flow": flow,
                          "options": {"device": "cpu", "max_batch_size": 4, "generation_path": "static"}}}
        name = f"{flow}-{in_flight}"
        with monkeypatch.context() as m:
            m.setattr(TransformersBackend, "generate_stream", counting_stream)
            if flow == "continuous":   # the engine must not fall back to batches of batch_size
                m.setattr(TransformersBackend, "generate", lambda self, r: pytest.fail("generate was called"))
            calls.clear(), joined.clear()
            manifest = run_local(load_pipeline(write_pipeline(tmp_path / name, models=models, stages=stages)),
                                 tmp_path / f"w-{name}", RunOptions(progress=False, shards_in_flight=in_flight))
        outputs[name] = [open(p, "rb").read() for p in output_paths(manifest, tmp_path / f"w-{name}")]
        answer = next(s for s in manifest["stages"] if s["label"] == "answer")
        assert answer["usage"]["requests"] == 23 and answer["counters"]["answered"] >= 12
        # shards of 5 rows: 0-4, 5-9 (row 5 dropped), 10-14, 15-19, 20-23 (rows 21-23 repeat rows 0-2, so
        # their answers are cache hits); batch: calls of at most batch_size, continuous: one call per shard
        if flow == "batch":
            assert calls == [2, 2, 1, 2, 2, 2, 2, 1, 2, 2, 1, 1] and not joined
        elif in_flight == 1:
            assert calls == [5, 4, 5, 5, 1] and not joined
        else:
            # rows 21-23 asked while shard 0 runs share its requests: each distinct prompt is sent once
            assert len(calls) < 5 and joined and sum(calls) + sum(joined) == 20
    assert outputs["batch-1"] == outputs["continuous-1"] == outputs["continuous-4"]
