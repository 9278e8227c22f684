"""Shards in flight (RunOptions.shards_in_flight, `--shards-in-flight`): several shards of a model stage at
once, on threads, feeding one shared request window per backend; the same bytes as one shard at a time."""
from __future__ import annotations

import pytest
import yaml

from engine_testlib import write_pipeline
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.manifest import output_paths
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline
from support.faulty_server import FaultyServer


@pytest.fixture
def server():
    s = FaultyServer(hold_seconds=0.3)
    yield s
    s.close()


def held_pipeline(root, server, concurrency: int):
    """The engine test pipeline against the loopback server; every prompt is held 0.3 s by the server."""
    models = {"gen": {"backend": "openai", "model": "m", "revision": "r1", "batch_size": 2, "options": {
        "base_url": server.base_url, "concurrency": concurrency, "timeout": 10, "max_retries": 0}}}
    path = write_pipeline(root, models=models)
    (root / "ask.txt").write_text("--- user\nhold {{text}}\n")
    return load_pipeline(path)


def outputs(manifest, work) -> list[bytes]:
    return [open(p, "rb").read() for p in output_paths(manifest, work)]


def test_shards_in_flight_share_the_backend_window_and_write_the_same_bytes(tmp_path, server):
    """Shards of 5 rows, openai concurrency 8: one shard at a time never has more than a shard's requests in
    flight; four in flight keep more than one shard's requests at the server, never more than the window,
    send every distinct prompt once, and publish the same bytes."""
    one = run_local(held_pipeline(tmp_path / "one", server, 8), tmp_path / "w1",
                    RunOptions(progress=False, shards_in_flight=1))
    assert server.max_in_flight <= 5
    sent_one = sum(server.attempts.values())
    server.attempts.clear()
    server.max_in_flight = 0
    four = run_local(held_pipeline(tmp_path / "four", server, 8), tmp_path / "w4",
                     RunOptions(progress=False, shards_in_flight=4))
    assert 5 < server.max_in_flight <= 8
    assert sum(server.attempts.values()) == sent_one == 20 and set(server.attempts.values()) == {1}
    assert outputs(one, tmp_path / "w1") == outputs(four, tmp_path / "w4")
    answer = next(s for s in four["stages"] if s["label"] == "answer")
    assert answer["usage"]["requests"] == 23 and answer["rows_out"] == 23
    # rows 21-23 repeat rows 0-2: answered from the cache or by shard 0's requests in flight, never sent
    assert (answer["usage"]["cache_misses"], answer["usage"]["cache_hits"]) == (20, 3)


def test_a_failing_shard_stops_the_others_and_a_rerun_sends_nothing_twice(tmp_path):
    """A backend failure in one shard ends the run with that error while other shards are in flight; the
    shards and answers finished before it are kept, and the rerun completes with every request sent once
    over both runs and the bytes of a clean run."""
    def pipeline(root, fail_on=None):
        path = write_pipeline(root)
        doc = yaml.safe_load(path.read_text())
        doc["models"]["gen"]["options"].update(delay=0.02, calls_file=str(tmp_path / "calls.txt"),
                                               **({"fail_on": fail_on} if fail_on else {}))
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return load_pipeline(path)

    work = tmp_path / "work"
    with pytest.raises(RuntimeError, match="fake backend failure on 'number 17'"):
        run_local(pipeline(tmp_path / "p1", "number 17"), work, RunOptions(progress=False, shards_in_flight=3))
    first = (tmp_path / "calls.txt").read_text().split()
    assert 0 < len(first) < 20
    resumed = run_local(pipeline(tmp_path / "p2"), work, RunOptions(progress=False, shards_in_flight=3))
    sent = (tmp_path / "calls.txt").read_text().split()
    # nothing answered in the failed run was sent again; only a failure is retried (the LONG row's "length",
    # when its shard had not finished)
    assert len(set(sent)) == 20 and len(sent) - len(set(sent)) <= 1
    clean = run_local(pipeline(tmp_path / "p3"), tmp_path / "clean", RunOptions(progress=False, shards_in_flight=1))
    assert outputs(resumed, work) == outputs(clean, tmp_path / "clean")
