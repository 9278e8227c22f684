"""How the transformers backend hands its requests to the static path (static_generation.py).

`StaticPath.stream` (and `generate`, which collects it) turns validated prompts into engine jobs, applies
the plain path's finish rules (EOS, max_tokens, stop strings) and builds each result with the backend's own
`_result`, so texts, stop truncation and finish reasons mean what they mean on the plain path; `stream`
hands each result over the moment its slot finishes. The engine (its cache and captured
graphs) is kept between calls while it is large enough; a CUDA out-of-memory error halves the slots and
reruns the unfinished requests from their start (a seeded sample starts again from its seed, so the
rerun gives what the first run would have).
"""
from __future__ import annotations

import logging
from typing import Callable, Iterator, Sequence

from .base import GenerationRequest, GenerationResult
from .static_generation import Job, StaticEngine, round_length, slot_count

log = logging.getLogger(__name__)


class StaticPath:
    def __init__(self, backend, graphs: bool | None = None, steps_per_sync: int | None = None,
                 decode_attention: str | None = None):
        self.backend = backend
        self.graphs = graphs
        # None: the engine's defaults (static_generation.STEPS_PER_SYNC, matmul decode attention)
        self.engine_options = {k: v for k, v in (("steps_per_sync", steps_per_sync),
                                                 ("decode_attention", decode_attention)) if v is not None}
        self.engine: StaticEngine | None = None
        self.slot_cap: int | None = None  # lowered after an out-of-memory error
        self.retired: dict[str, float] = {}  # stats of engines replaced or dropped

    @property
    def stats(self) -> dict[str, float]:
        """Captures, capture/prefill/decode seconds and steps over every engine this path has used."""
        out = dict(self.retired)
        for key, value in (self.engine.stats if self.engine else {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = out.get(key, 0) + value
        return out

    def _retire(self) -> None:
        if self.engine is not None:
            for key, value in self.engine.stats.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.retired[key] = self.retired.get(key, 0) + value
        self.engine = None

    def _engine(self, slots: int, length: int) -> StaticEngine:
        e = self.engine
        if e is not None and e.slots >= slots and e.length >= round_length(length) and (
                self.slot_cap is None or e.slots <= self.slot_cap):
            return e
        self._retire()
        b = self.backend
        self.engine = StaticEngine(b.model, slots=slots, length=length, eos_ids=b.eos_ids, pad_id=b.pad_id,
                                   ignore_eos=b.ignore_eos, graphs=self.graphs, **self.engine_options)
        return self.engine

    def _finished(self, job: Job, tokens: list[int]) -> bool:
        if tokens[-1] in self.backend.eos_ids or len(tokens) >= job.sampling.max_tokens:
            return True
        stop = job.sampling.stop
        if not stop:
            return False
        # the tail is enough: a stop string of n characters spans at most n tokens
        tail = self.backend.tokenizer.decode(tokens[-(max(map(len, stop)) + 8):], skip_special_tokens=True)
        return any(s in tail for s in stop)

    def generate(self, requests: Sequence[GenerationRequest], prompts: dict[int, list[int]],
                 into: dict[int, GenerationResult] | None = None) -> dict[int, GenerationResult]:
        """Results by request index; `into` (returned) receives them as they finish, so a caller whose call
        raises still has the finished ones."""
        results: dict[int, GenerationResult] = {} if into is None else into
        for i, result in self.stream(requests, prompts):
            results[i] = result
        return results

    def stream(self, requests: Sequence[GenerationRequest], prompts: dict[int, list[int]],
               more: Callable[[], dict[int, list[int]]] | None = None) -> Iterator[tuple[int, GenerationResult]]:
        """(request index, result) for every prompt, each the moment its slot finishes. `more()`, if given,
        is asked between engine turns for new prompts (it adds them to `requests` and `prompts`): those that
        fit the running engine join its queue, the others wait for an engine of their length."""
        import torch

        b = self.backend
        done: set[int] = set()
        todo = sorted(prompts)
        arrivals = 0
        while todo:
            jobs = [_job(i, prompts[i], requests[i]) for i in todo]
            need = max(len(j.prompt) + j.sampling.max_tokens for j in jobs)
            slots = slot_count(b.max_batch_size, b.max_batch_tokens, need)
            slots = min(slots, self.slot_cap or slots)
            deferred: list[int] = []

            def admit(engine: StaticEngine) -> list[Job]:
                nonlocal arrivals
                new = more() if more is not None else {}
                if not new:
                    return []
                arrivals += 1
                fits = []
                for i in sorted(new):
                    if len(new[i]) + requests[i].sampling.max_tokens <= engine.length:
                        fits.append(_job(i, new[i], requests[i], arrivals))
                    else:
                        deferred.append(i)
                return fits

            try:
                engine = self._engine(slots, need)
                for job in engine.run(jobs, self._finished, (lambda: admit(engine)) if more else None):
                    done.add(job.index)
                    yield job.index, b._result(list(job.tokens), len(job.prompt), job.sampling)
                todo = deferred
                continue
            except torch.OutOfMemoryError as exc:
                self._retire()
                oom = f"out of memory: {exc}"
            # After the except block, where the traceback no longer holds the failed engine's cache.
            if b.device.startswith("cuda"):
                torch.cuda.empty_cache()
            todo = sorted(i for i in prompts if i not in done)
            if slots == 1:
                for i in todo:
                    yield i, GenerationResult("", "error", prompt_tokens=len(prompts[i]), error=oom)
                return
            self.slot_cap = slots // 2
            b.oom_splits += 1
            log.warning("out of memory with %d slots; %d requests again with %d", slots, len(todo), self.slot_cap)

    def close(self) -> None:
        self._retire()


def _job(index: int, prompt: list[int], request: GenerationRequest, arrival: int = 0) -> Job:
    import torch

    s = request.sampling
    gen = torch.Generator().manual_seed(int(s.seed + request.sample_index)) if s.temperature > 0 else None
    return Job(index, prompt, s, gen, arrival=arrival)
