"""One request window per backend shared by caller threads (backends/shared_stream.py), with the real openai
backend against the loopback server and the scripted backend."""
from __future__ import annotations

import threading
import time

import pytest

from megascience_build.backends import make_backend
from megascience_build.backends.base import GenerationRequest
from megascience_build.backends.openai_backend import ModelMismatchError
from megascience_build.backends.shared_stream import SharedStream, StreamAborted, accepts_more


def ask(text: str) -> GenerationRequest:
    return GenerationRequest(({"role": "user", "content": text},))


def openai(server, concurrency: int):
    return make_backend({"backend": "openai", "model": "m", "options": {
        "base_url": server.base_url, "concurrency": concurrency, "timeout": 10, "max_retries": 0}})


def on_threads(callers: int, work) -> list:
    """Run work(k) on `callers` threads started together; their return values (or exceptions) by k."""
    out: list = [None] * callers
    start = threading.Barrier(callers)

    def run(k: int) -> None:
        start.wait()
        try:
            out[k] = work(k)
        except Exception as exc:  # handed back to the test
            out[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_callers_on_threads_share_one_openai_window(faulty_server):
    """Three shards of 4 requests each, on three threads: one backend call, the later shards joining it,
    at most `concurrency` requests in flight over all of them, each caller getting its own answers."""
    backend = openai(faulty_server, concurrency=4)
    shared = SharedStream(backend, name="gen")
    assert accepts_more(backend)
    answers = on_threads(3, lambda k: dict(shared.stream([ask(f"hold {k}-{i}") for i in range(4)])))
    for k, got in enumerate(answers):
        assert sorted(got) == [0, 1, 2, 3]
        assert [got[i].text for i in range(4)] == [f"answer to hold {k}-{i}" for i in range(4)]
    assert faulty_server.max_in_flight == 4             # one window for the backend, not one per caller
    assert shared.rounds == 1 and shared.joined == 2
    shared.close()


def test_a_backend_without_more_gets_one_call_per_submission():
    """The scripted backend takes no requests while it runs: each submission is a call of its own, so its
    calls are exactly those it would get without shards in flight."""
    backend = make_backend({"backend": "scripted", "model": "s", "options": {"default": "fine", "delay": 0.01}})
    assert not accepts_more(backend)
    shared = SharedStream(backend)
    answers = on_threads(3, lambda k: shared.generate([ask(f"q {k}-{i}") for i in range(3)]))
    assert all([r.text for r in got] == ["fine"] * 3 for got in answers)
    assert shared.rounds == 3 and shared.joined == 0 and backend.batches == 3
    shared.close()


def test_a_batch_flow_submission_is_never_merged(faulty_server):
    """live=False (the engine's `flow: batch`): its requests make a backend call of their own even while a
    live call is running."""
    shared = SharedStream(openai(faulty_server, concurrency=4))
    out = on_threads(2, lambda k: shared.generate([ask(f"hold {k}-{i}") for i in range(2)], live=(k == 0)))
    assert [r.text for r in out[1]] == ["answer to hold 1-0", "answer to hold 1-1"]
    assert shared.rounds == 2 and shared.joined == 0
    shared.close()


def test_a_failed_call_reaches_its_callers_and_the_next_submission_is_served(faulty_server):
    shared = SharedStream(openai(faulty_server, concurrency=2))
    faulty_server.served_model = "another-model"
    with pytest.raises(ModelMismatchError, match="answered as model 'another-model'"):
        shared.generate([ask("ok a"), ask("ok b")])
    faulty_server.served_model = None
    assert [r.text for r in shared.generate([ask("ok c")])] == ["answer to ok c"]
    shared.close()


def test_abort_ends_queued_callers_at_once_and_running_ones_after_the_grace():
    """A caller whose request waits in the intake ends at once; one whose request the backend is working on
    gets what arrives within ABORT_GRACE_S (here nothing: the server holds it 4 s), then ends; later
    submissions are refused."""
    from megascience_build.backends.shared_stream import ABORT_GRACE_S
    from support.faulty_server import FaultyServer

    server = FaultyServer(slow_seconds=4)
    shared = SharedStream(openai(server, concurrency=1))
    ended = {}

    def call(name: str, text: str) -> None:
        try:
            shared.generate([ask(text)])
        except StreamAborted as exc:
            ended[name] = (time.monotonic(), str(exc))

    running = threading.Thread(target=call, args=("running", "slow:1 x"))
    running.start()
    time.sleep(0.2)
    queued = threading.Thread(target=call, args=("queued", "ok y"))   # the one connection slot is taken
    queued.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    shared.abort("shard 3 failed")
    queued.join(5)
    running.join(5)
    assert "shard 3 failed" in ended["queued"][1] and ended["queued"][0] - t0 < ABORT_GRACE_S - 0.5
    assert ABORT_GRACE_S - 0.1 < ended["running"][0] - t0 < ABORT_GRACE_S + 1
    assert "ok y" not in server.attempts
    with pytest.raises(StreamAborted, match="aborted"):
        shared.generate([ask("ok later")])
    shared.close(timeout=0)
    server.close()


def test_an_equal_request_on_its_way_answers_every_caller_that_asks_for_it(faulty_server):
    """Two shards in flight asking the same prompt (same cache key) send it once and both get the answer; a
    third asking just after it was answered (before any caller committed it to the request cache) too.
    A failure is not kept for later callers: they ask again, as a cache miss would."""
    shared = SharedStream(openai(faulty_server, concurrency=4))
    texts = ["hold same", "hold own-0", "hold own-1"]
    out = on_threads(2, lambda k: shared.generate([ask(texts[0]), ask(texts[1 + k])], keys=["K", f"own-{k}"]))
    assert [[r.text for r in got] for got in out] == [["answer to hold same", f"answer to hold own-{k}"]
                                                       for k in range(2)]
    late = shared.generate([ask("hold same")], keys=["K"])
    assert late[0].text == "answer to hold same"
    assert faulty_server.attempts["hold same"] == 1 and shared.shared == 2
    for _ in range(2):
        assert shared.generate([ask("length x")], keys=["L"])[0].finish_reason == "length"
    assert faulty_server.attempts["length x"] == 2
    shared.close()
