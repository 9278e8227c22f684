"""tests/support/stage_context.py gives the context production gives: the answers a unit test puts in the
request cache are the ones a pipeline run with the same model and prompts reads back."""
from __future__ import annotations

import pyarrow as pa
import pytest
import yaml

from megascience_build.engine import records
from megascience_build.engine.cache import CacheMissError, RequestCache
from megascience_build.engine.context import ModelPool, StageContext
from megascience_build.engine.pipeline_config import load_pipeline
from support.stage_context import stage_context

SENT: list[str] = []


def reply(request):
    """The filter's verdict, by question (the responder a pipeline file names as test_stage_context:reply)."""
    SENT.append(request.messages[-1]["content"])
    return "Analysis: fine.\nDecision: YES" if "keep" in request.messages[-1]["content"] else "Decision: NO"


def filter_stage(tmp_path):
    """The filter_qa stage of a one-stage pipeline file whose judge is the scripted `reply`."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({
        "name": "filter_only", "input": {"parquet": "rows.parquet"},
        "models": {"judge": {"backend": "scripted", "model": "scripted/test", "revision": "1",
                             "options": {"responder": f"{__name__}:reply"}}},
        "stages": [{"stage": "filter_qa", "llm": "judge", "sampling": {"max_tokens": 64}}]}))
    return load_pipeline(path)


def pairs() -> pa.Table:
    questions = ["keep: what is 2 + 2?", "drop: see Figure 3", "keep: what is 2 + 2?"]
    return pa.table({records.ID: [records.content_id("q", i) for i in range(3)],
                     records.PROVENANCE: [records.new_provenance({"kind": "test"}) for _ in range(3)],
                     "question": questions, "answer": ["4", "x", "4"]})


def test_a_pipeline_run_reads_what_the_test_context_cached(tmp_path):
    config = filter_stage(tmp_path)
    spec = config.stages[0]
    cache = tmp_path / "cache.sqlite"
    SENT.clear()
    test_ctx = stage_context(spec.stage, responder=reply, sampling=spec.sampling, cache=cache)
    first = spec.stage.process(pairs(), test_ctx)
    assert len(SENT) == 2                                   # one backend call per distinct prompt
    assert (test_ctx.usage.requests, test_ctx.usage.cache_hits) == (3, 0)
    assert test_ctx.llm().model_id == "scripted/test" and first.dropped == [(1, "filter_rejected")]

    production = StageContext(config, spec, cache=RequestCache(cache), models=ModelPool(config), cache_only=True)
    second = spec.stage.process(pairs(), production)
    assert len(SENT) == 2 and (production.usage.requests, production.usage.cache_hits) == (3, 3)
    assert second.kept.equals(first.kept) and second.dropped == first.dropped


def test_a_fresh_cache_per_context_unless_one_is_shared(tmp_path):
    spec = filter_stage(tmp_path).stages[0]
    SENT.clear()
    for _ in range(2):
        spec.stage.process(pairs(), stage_context(spec.stage, responder=reply, sampling=spec.sampling,
                                                  tmp_path=tmp_path))
    assert len(SENT) == 4
    with pytest.raises(CacheMissError):
        spec.stage.process(pairs(), stage_context(spec.stage, responder=reply, tmp_path=tmp_path, cache_only=True))
