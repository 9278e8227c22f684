"""One request window per backend, shared by every thread that asks it for answers.

The local executor runs several shards of a model stage at once (`--shards-in-flight`), each on its own
thread, each calling its stage's cached generator. Without this module each shard's call would be its own
batch barrier: the backend idles while a shard's last long replies finish. `SharedStream` gives the
backend one owner thread (the dispatcher) that feeds it every caller's requests:

- a backend whose `generate_stream` takes `more` (the openai backend; the transformers backend on its static
  path) is asked for new work while it runs: a request a shard submits joins the running stream as soon as
  the backend has room (a free connection slot, a free KV-cache slot), so the window stays full across
  shards and the backend drains only at the end of the stage;
- a backend that batches a call with its own scheduler (`merges_calls`: vLLM in-process) gets the
  submissions waiting when a call starts as one call;
- any other backend gets one call per submission, in the order they came (the same calls as without
  shards in flight, so its batches, and the numerics that depend on them, do not change).

Each caller gets its own answers back as they finish, indexed by its own request positions. Callers that
pass cache keys share work: a request whose key is already waiting or running (the same prompt asked by
two shards in flight) is not sent again; both get the one answer, as one shard after the other would
through the request cache. A failure of the backend reaches every caller whose requests were in that call.
`abort` (the executor's, when a shard fails or the run is interrupted) ends the queued callers at once and
those in the running call once it has handed over the answers it already has (ABORT_GRACE_S at most), so
they can commit them to the request cache before they stop.
"""
from __future__ import annotations

import inspect
import threading
from collections import OrderedDict, deque
from typing import Any, Iterator, Sequence

from .base import GenerationRequest, GenerationResult


RECENT_ANSWERS = 4096   # answers kept for a caller that asks just after an equal request was answered
ABORT_GRACE_S = 2.0     # how long an abort lets the running call hand over the answers it already has


class StreamAborted(RuntimeError):
    """The shared stream was aborted (another shard failed, or the run was interrupted)."""


class _Submission:
    """One caller's requests. `send` holds the (index, request) pairs it asks the backend for; the others
    wait on an equal request of an earlier submission."""

    def __init__(self, count: int, live: bool, keys: Sequence[str] | None):
        self.count = count
        self.live = live
        self.keys = keys
        self.send: list[tuple[int, GenerationRequest]] = []
        self.answers: deque = deque()              # (index, result), or an exception
        self.ready = threading.Semaphore(0)

    def deliver(self, item: Any) -> None:
        self.answers.append(item)
        self.ready.release()


def accepts_more(backend) -> bool:
    """Whether the backend's generate_stream can take new requests while it runs."""
    flag = getattr(backend, "accepts_more", None)
    if flag is not None:
        return bool(flag)
    stream = getattr(backend, "generate_stream", None)
    return stream is not None and "more" in inspect.signature(stream).parameters


class SharedStream:
    def __init__(self, backend, *, name: str = "backend"):
        self.backend = backend
        self.name = name
        self._cond = threading.Condition()
        self._intake: deque[_Submission] = deque()
        self._waiting: set[_Submission] = set()
        self._sharers: dict[str, list[tuple[_Submission, int]]] = {}   # key -> who else waits for it
        # complete answers just given out: the request cache has them only once their caller commits
        self._recent: OrderedDict[str, GenerationResult] = OrderedDict()
        self._running: set[_Submission] = set()    # submissions in the backend call now running
        self._aborted: BaseException | str | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self.rounds = 0          # backend calls made
        self.joined = 0          # submissions that joined a call already running
        self.shared = 0          # requests answered by an equal request already on its way

    # -- callers ------------------------------------------------------------------------------------

    def stream(self, requests: Sequence[GenerationRequest], *, keys: Sequence[str] | None = None,
               live: bool = True, shared: set | None = None) -> Iterator[tuple[int, GenerationResult]]:
        """(index in `requests`, result) for every request, in completion order. `keys` (their cache keys)
        lets an equal request already on its way answer this one (its key goes into `shared`, if given);
        `live=False` keeps the requests to a backend call of their own (the batch flow)."""
        if not requests:
            return
        sub = _Submission(len(requests), live, keys)
        with self._cond:
            if self._aborted is not None:
                raise StreamAborted(f"{self.name}: the shared request stream was aborted: {self._aborted}")
            for i, req in enumerate(requests):
                key = keys[i] if keys is not None else None
                if key is not None and (key in self._recent or key in self._sharers):
                    if key in self._recent:
                        sub.deliver((i, self._recent[key]))
                    else:
                        self._sharers[key].append((sub, i))
                    self.shared += 1
                    if shared is not None:
                        shared.add(key)
                    continue
                if key is not None:
                    self._sharers[key] = []
                sub.send.append((i, req))
            self._waiting.add(sub)
            if sub.send:
                self._intake.append(sub)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, name=f"{self.name}-stream", daemon=True)
                    self._thread.start()
                self._cond.notify_all()
        try:
            for _ in range(sub.count):
                sub.ready.acquire()
                item = sub.answers.popleft()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            with self._cond:
                self._waiting.discard(sub)

    def generate(self, requests: Sequence[GenerationRequest], *, keys: Sequence[str] | None = None,
                 live: bool = True, shared: set | None = None) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        for i, result in self.stream(requests, keys=keys, live=live, shared=shared):
            results[i] = result
        return results  # type: ignore[return-value]

    def abort(self, reason: BaseException | str) -> None:
        """End every waiting caller with StreamAborted; later submissions are refused. Callers whose requests
        are in the running call first get the answers it already has (so they can commit them), and are
        ended at most ABORT_GRACE_S later whatever the backend does."""
        error = StreamAborted(f"{self.name}: the shared request stream was aborted: {reason}")
        with self._cond:
            self._aborted = reason
            running = set(self._running)
            waiting = [sub for sub in self._waiting if sub not in running]
            self._intake.clear()
            self._cond.notify_all()
        for sub in waiting:
            sub.deliver(error)
        _end_later(running, error)

    def close(self, timeout: float | None = None) -> None:
        """Stop the dispatcher: a call in progress stops at its next answer, and its callers get what it
        already has; wait at most `timeout` seconds for that (the thread is a daemon: it cannot hold up exit).
        Every caller still waiting then ends with StreamAborted."""
        error = StreamAborted(f"{self.name}: the shared request stream was closed")
        with self._cond:
            thread, self._thread = self._thread, None
            self._closing = True
            running = set(self._running)
            waiting = [sub for sub in self._waiting if sub not in running]
            self._cond.notify_all()
        for sub in waiting:
            sub.deliver(error)
        if thread is not None:
            thread.join(timeout)
        if thread is not None and thread.is_alive():
            _end_later(running, error)
        else:
            for sub in running:
                sub.deliver(error)

    # -- the dispatcher -----------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._intake and not self._closing:
                    self._cond.wait()
                if not self._intake:
                    return
                first = self._intake.popleft()
                self._running.add(first)    # from here an abort lets this call hand over what it has
            merge = first.live and bool(getattr(self.backend, "merges_calls", False))
            self._round(first, live=first.live and accepts_more(self.backend), merge=merge)

    def _take_live(self) -> list[_Submission]:
        """Live submissions at the head of the intake, without blocking (a batch-flow one stays first)."""
        out = []
        with self._cond:
            while self._intake and self._intake[0].live and self._aborted is None and not self._closing:
                out.append(self._intake.popleft())
        return out

    def _answer(self, sub: _Submission, index: int, item: Any) -> None:
        """Hand an answer (or a failure) to its submission and to every caller waiting on an equal request."""
        key = sub.keys[index] if sub.keys is not None else None
        with self._cond:
            sharers = self._sharers.pop(key, []) if key is not None else []
            if key is not None and isinstance(item, GenerationResult) and item.ok:
                self._recent[key] = item
                while len(self._recent) > RECENT_ANSWERS:
                    self._recent.popitem(last=False)
        sub.deliver(item if isinstance(item, BaseException) else (index, item))
        for other, other_index in sharers:
            other.deliver(item if isinstance(item, BaseException) else (other_index, item))

    def _round(self, first: _Submission, *, live: bool, merge: bool = False) -> None:
        """One backend call: the submission's requests, with `merge` those waiting behind it, and with `live`
        those that arrive while it runs."""
        routes: list[tuple[_Submission, int]] = []
        requests: list[GenerationRequest] = []

        def add(new: list[_Submission]) -> list[GenerationRequest]:
            added = [req for sub in new for _, req in sub.send]
            routes.extend((sub, i) for sub in new for i, _ in sub.send)
            requests.extend(added)
            with self._cond:
                self._running.update(new)
            return added

        def more() -> list[GenerationRequest]:
            new = self._take_live()
            self.joined += len(new)
            return add(new)

        add([first, *(self._take_live() if merge else [])])
        self.rounds += 1
        answered: set[int] = set()
        # a backend without generate_stream hands every answer over at once: all of them are delivered
        buffered = getattr(self.backend, "generate_stream", None) is None
        stopped = False
        try:
            for i, result in self._call(requests, more if live else None):
                if not (isinstance(i, int) and 0 <= i < len(routes)) or i in answered:
                    raise RuntimeError(f"{self.name}: the backend streamed a result for request #{i!r} "
                                       f"(of {len(routes)}) twice or out of range")
                answered.add(i)
                self._answer(*routes[i], result)
                if (self._aborted is not None or self._closing) and not buffered:
                    stopped = True
                    break
            if not stopped and len(answered) != len(routes):
                raise RuntimeError(f"{self.name}: the backend streamed {len(answered)} results for "
                                   f"{len(routes)} requests")
        except BaseException as exc:  # every caller of this call hears of it; the dispatcher lives on
            for n, (sub, index) in enumerate(routes):
                if n not in answered:
                    self._answer(sub, index, exc)
        finally:
            with self._cond:
                self._running.clear()
        if stopped or self._aborted is not None:
            error = StreamAborted(f"{self.name}: the shared request stream was "
                                  f"{'aborted: ' + str(self._aborted) if self._aborted is not None else 'closed'}")
            for sub in {id(sub): sub for sub, _ in routes}.values():
                sub.deliver(error)

    def _call(self, requests, more) -> Iterator[tuple[int, GenerationResult]]:
        stream = getattr(self.backend, "generate_stream", None)
        if stream is None:    # a backend with generate only (vLLM in-process: its own scheduler batches)
            return enumerate(self.backend.generate(requests))
        return stream(requests, more=more) if more is not None else stream(requests)


def _end_later(subs: set[_Submission], error: StreamAborted) -> None:
    """End these callers ABORT_GRACE_S from now, whatever their backend call is doing (the answers it hands
    over before then reach them first)."""
    if subs:
        timer = threading.Timer(ABORT_GRACE_S, lambda: [sub.deliver(error) for sub in subs])
        timer.daemon = True
        timer.start()
