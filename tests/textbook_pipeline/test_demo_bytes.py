"""`make demo` gives the same output shard, byte for byte, for the same request cache.

fixtures/demo_cache.sqlite is the request cache of one full `make demo` run (SmolLM2-135M-Instruct on a CPU,
2026-12-04, before the one-shape redesign of issue #10). Replaying the demo pipeline from it with
`--cache-only` runs every stage of today's code (the models' answers come from the cache; MiniLM still
embeds) and must write the shard that run wrote: any change to a stage, parser, provenance step or writer
that alters a byte fails here.

The recorded run wrote ac53702f1f5c98eb...; the shard below differs from it in one provenance field only: the
chunk step's `tokenizer_source`, which then held this machine's install path of the MiniLM tokenizer and
now names the alias (`alias minilm`; the sha256 beside it pins the content), so the bytes no longer depend on
where the package is installed. Every other byte of every row was compared equal.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from megascience_build.demo import PIPELINE
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline

CACHE = Path(__file__).parent / "fixtures" / "demo_cache.sqlite"
# sha256 of work/demo/output/part-00000.parquet for that cache (see above)
DEMO_SHARD_SHA256 = "f24e023f97f32a073932268f52332930b40e40457756bd3bc7530a94be186669"


@pytest.mark.slow
@pytest.mark.model
def test_demo_output_is_byte_identical_for_the_recorded_cache(tmp_path):
    cache = tmp_path / "cache.sqlite"
    shutil.copyfile(CACHE, cache)
    manifest = run_local(load_pipeline(PIPELINE), tmp_path / "work",
                         RunOptions(cache_path=str(cache), cache_only=True, progress=False))
    shards = sorted((tmp_path / "work" / "output").glob("part-*.parquet"))
    assert [s.name for s in shards] == ["part-00000.parquet"]
    assert hashlib.sha256(shards[0].read_bytes()).hexdigest() == DEMO_SHARD_SHA256
    assert sum(o["rows"] for o in manifest["outputs"]) > 0
