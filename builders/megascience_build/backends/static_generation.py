"""The static generation path of the transformers backend: continuous batching over a static KV cache.

A fixed number of slots (rows of a preallocated K/V buffer per layer). Requests wait in a queue sorted by
prompt length; whenever enough slots are free, the next prompts are prefilled together (left-padded, their
K/V copied into their slots) and join the running batch; each decode step feeds every active slot one token
at its own position, and a slot is handed to a waiting request as soon as its reply ends (EOS, max_tokens or
a stop string). No batch waits for its longest reply, and no cache is concatenated or re-padded per step.

On CUDA each decode step is captured once as a CUDA graph per (batch bucket, length bucket) and replayed
(no torch.compile: capture took 0.1 s per bucket on an H200 and is counted in `stats["capture_s"]`). The
batch bucket is the smallest power of two covering the highest active slot (slots are compacted when the
queue is empty), the length bucket the smallest multiple of LENGTH_STEP covering the longest context, so
attention reads little beyond the live cache. On CPU the same steps run eagerly (the tests use that).

The step keeps its own state on the device: it takes each row's token and position from a device buffer,
writes the greedy token back there and into a ring of `steps_per_sync` rows, and advances the positions.
So a block of up to `steps_per_sync` steps is queued without waiting, and the host reads the block's
tokens once (one copy in, one copy out per block instead of per token). The host then appends them one by
one and applies the finish rules after each, exactly as per step; tokens a row made after its end are
dropped (a finished row's slot is free, its extra K/V writes land beyond anything a later request reads,
and positions are clamped to the cache). New requests are admitted between blocks. While any active
request samples, blocks are one step long: the host draws its token from the step's logits.

Meaning is that of the plain path: the same token selection (greedy argmax; `_SeededSampler`, one draw per
generated token from the request's own generator; EOS suppressed under ignore_eos), the same finish rules
and the backend's own `_result` for text, stop-string truncation and finish reasons. What may differ is
numerics (other kernels, no padding), as between batch shapes of the plain path.
"""
from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from .slot_cache import (ATTENTION_NAME, DECODE_ATTENTIONS, _DECODE, SlotCache, _register_attention, _torch,
                         cache_keyword)

log = logging.getLogger(__name__)

PATHS = ("auto", "plain", "static")
SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
LENGTH_STEP = 512
STEPS_PER_SYNC = 16  # decode steps queued between two reads of their tokens by the host


# -- buckets (pure) -------------------------------------------------------------------------------------

def round_length(n: int) -> int:
    """The cache length for contexts of up to n tokens: a multiple of 128 (kernels like aligned masks)."""
    return max(128, -(-int(n) // 128) * 128)


def length_buckets(max_len: int, step: int = LENGTH_STEP) -> list[int]:
    """Attention spans a decode step may use: 128, 256, then every `step`, and the cache length itself."""
    limit = round_length(max_len)
    spans = {s for s in (128, 256) if s < limit} | set(range(step, limit, step)) | {limit}
    return sorted(spans)


def batch_buckets(slots: int) -> list[int]:
    """Batch sizes a decode step may use: powers of two below `slots`, and `slots`."""
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    out, b = [], 1
    while b < slots:
        out.append(b)
        b *= 2
    return out + [slots]


def bucket_for(buckets: list[int], n: int) -> int:
    for b in buckets:
        if b >= n:
            return b
    raise ValueError(f"{n} exceeds the largest bucket {buckets[-1]}")


def slot_count(max_batch_size: int, max_batch_tokens: int, max_len: int) -> int:
    """Slots such that slots x cache length stays within the backend's token budget (at least one)."""
    return max(1, min(int(max_batch_size), int(max_batch_tokens) // round_length(max_len)))


# -- which path ---------------------------------------------------------------------------------------

def unsupported_reason(model) -> str | None:
    """Why the static path cannot run this model (None when it can): decoder-only families whose attention
    layers all attend to the full context, and a torch with scaled_dot_product_attention."""
    cfg = getattr(model, "config", None)
    kind = getattr(cfg, "model_type", None)
    if kind not in SUPPORTED_MODEL_TYPES:
        return f"model type {kind!r} is not one of {', '.join(SUPPORTED_MODEL_TYPES)}"
    layer_types = set(getattr(cfg, "layer_types", None) or ["full_attention"])
    if layer_types != {"full_attention"} or (getattr(cfg, "use_sliding_window", False)
                                             and getattr(cfg, "sliding_window", None)):
        return "sliding-window attention layers"
    return None


def resolve_path(option: str, device: str, model) -> str:
    """"plain" or "static" for option auto|plain|static: auto is static on CUDA where the model allows it
    (the faster path measured there, BENCHMARKS.md), plain elsewhere; static on an unsupported model fails."""
    if option not in PATHS:
        raise ValueError(f"transformers backend: option generation_path must be one of {', '.join(PATHS)}, "
                         f"not {option!r}")
    if option == "plain":
        return "plain"
    reason = unsupported_reason(model)
    if option == "static":
        if reason:
            raise ValueError(f"transformers backend: generation_path static cannot run this model: {reason}")
        return "static"
    return "static" if device.startswith("cuda") and reason is None else "plain"


@dataclass
class Job:
    index: int
    prompt: list[int]
    sampling: object
    generator: object = None  # torch.Generator for sampled requests
    tokens: list[int] = field(default_factory=list)
    slot: int = -1
    arrival: int = 0  # jobs that joined a running engine later wait behind the earlier ones


class StaticEngine:
    """Continuous batching over `slots` slots of a SlotCache of `length` positions (see the module doc)."""

    def __init__(self, model, *, slots: int, length: int, eos_ids, pad_id: int, ignore_eos: bool,
                 graphs: bool | None = None, prefill_tokens: int = 16384, admit_fraction: float = 0.125,
                 steps_per_sync: int = STEPS_PER_SYNC, decode_attention: str = "matmul"):
        if decode_attention not in DECODE_ATTENTIONS:
            raise ValueError(f"decode_attention must be one of {', '.join(DECODE_ATTENTIONS)}, not {decode_attention!r}")
        torch = _torch()
        _register_attention()
        self.model = model
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.slots, self.length = int(slots), round_length(length)
        self.cache = SlotCache(model.config, self.slots, self.length, self.dtype, self.device)
        self.cache_kw = cache_keyword(model.forward)
        self.eos = torch.tensor(sorted(set(eos_ids)), device=self.device)
        self.pad_id, self.ignore_eos = pad_id, bool(ignore_eos)
        self.graphs_on = self.device.type == "cuda" if graphs is None else bool(graphs)
        self.prefill_tokens = int(prefill_tokens)
        self.admit_at = max(1, int(self.slots * admit_fraction))  # free slots that trigger a prefill
        self.batch_sizes, self.spans = batch_buckets(self.slots), length_buckets(self.length)
        self.positions = torch.arange(self.length, device=self.device)
        self.block = max(1, int(steps_per_sync))
        self.decode_attention = decode_attention
        self.ring = torch.zeros((self.block, self.slots), dtype=torch.long, device=self.device)
        pin = self.device.type == "cuda"
        self.state_host = torch.zeros(2 * self.slots + 1, dtype=torch.long, pin_memory=pin)
        self.graphs: dict[tuple[int, int], tuple] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.graphs_on else None
        self.stats = {"captures": 0, "capture_s": 0.0, "prefills": 0, "prefill_s": 0.0, "decode_steps": 0,
                      "decode_s": 0.0, "decode_blocks": 0, "wasted_steps": 0, "graphs": self.graphs_on}

    # -- model calls --------------------------------------------------------------------------------

    def _forward(self, ids, position_ids, mask):
        cfg = self.model.config
        before = cfg._attn_implementation
        cfg._attn_implementation = ATTENTION_NAME
        _DECODE["attention"] = self.decode_attention
        try:
            out = self.model(input_ids=ids, position_ids=position_ids, attention_mask=mask, use_cache=True,
                             logits_to_keep=1, **{self.cache_kw: self.cache})
        finally:
            cfg._attn_implementation = before
        return out.logits[:, -1]

    def _greedy(self, logits):
        if self.ignore_eos:  # as min_new_tokens = max_tokens does on the plain path
            logits = logits.index_fill(1, self.eos, float("-inf"))
        return logits.argmax(-1)

    def _decode(self, b: int, span: int):
        """One step for rows [0, b): the logits and greedy tokens, which also become the rows' next input
        (and ring row `step`); positions advance, clamped to the cache."""
        c = self.cache
        c.span = span
        pos = c.pos[:b]
        mask = (self.positions[:span][None, :] <= pos[:, None])[:, None, None, :]
        logits = self._forward(c.ids[:b], pos[:, None], mask)
        greedy = self._greedy(logits)
        self.ring[:, :b].index_copy_(0, c.step, greedy[None])
        c.ids[:b, 0].copy_(greedy)
        pos.add_(1).clamp_(max=self.length - 1)
        c.step.add_(1)
        return logits, greedy

    def _step(self, b: int, span: int):
        if not self.graphs_on:
            return self._decode(b, span)
        entry = self.graphs.get((b, span))
        if entry is None:
            try:
                entry = self._capture(b, span)
            except _torch().OutOfMemoryError:
                raise
            except Exception:  # eager steps give the same results, only slower
                log.exception("CUDA graph capture failed; decoding eagerly from now on")
                self.graphs_on = self.stats["graphs"] = False
                return self._decode(b, span)
        graph, outputs = entry
        graph.replay()
        return outputs

    def _capture(self, b: int, span: int):
        """Capture one decode step. The warm-up step and the capture write the same K/V the replay writes
        next (same ids and positions, restored in between), so capturing in the middle of a run changes
        nothing."""
        torch = _torch()
        t = time.perf_counter()
        torch.cuda.synchronize()
        saved = self.cache.state.clone()
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._decode(b, span)
            torch.cuda.current_stream().wait_stream(side)
            self.cache.state.copy_(saved)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                outputs = self._decode(b, span)
            torch.cuda.synchronize()
        finally:
            self.cache.state.copy_(saved)  # the step runs at its replay (or eagerly, if capture failed)
        self.graphs[(b, span)] = (graph, outputs)
        self.stats["captures"] += 1
        self.stats["capture_s"] += time.perf_counter() - t
        return graph, outputs

    def _prefill(self, jobs: list[Job]):
        """Logits of the last prompt position for each job; their K/V land in their slots."""
        torch = _torch()
        width = max(len(j.prompt) for j in jobs)
        ids = torch.full((len(jobs), width), self.pad_id, dtype=torch.long)
        pos = torch.zeros((len(jobs), width), dtype=torch.long)
        valid = torch.zeros((len(jobs), width), dtype=torch.bool)
        for row, j in enumerate(jobs):
            n = len(j.prompt)
            ids[row, width - n:] = torch.tensor(j.prompt, dtype=torch.long)
            pos[row, width - n:] = torch.arange(n)
            valid[row, width - n:] = True
        valid = valid.to(self.device)
        causal = torch.ones((width, width), dtype=torch.bool, device=self.device).tril()
        eye = torch.eye(width, dtype=torch.bool, device=self.device)  # padded queries see themselves: no NaN
        mask = ((causal[None] & valid[:, None, :]) | eye[None])[:, None]
        self.cache.prefill = [(j.slot, len(j.prompt)) for j in jobs]
        try:
            return self._forward(ids.to(self.device), pos.to(self.device), mask)
        finally:
            self.cache.prefill = None

    def _choose(self, logits, jobs: list[Job], greedy=None) -> list[int]:
        """Next token per row: greedy argmax, or the seeded sampler's draw for sampled requests."""
        from .transformers_backend import _SeededSampler

        tokens = (self._greedy(logits) if greedy is None else greedy)[:len(jobs)]
        groups: dict[tuple, list[int]] = {}
        for row, j in enumerate(jobs):
            if j is not None and j.sampling.temperature > 0:
                groups.setdefault((j.sampling.temperature, j.sampling.top_p), []).append(row)
        if groups:
            tokens = tokens.clone()
            for (temperature, top_p), rows in groups.items():
                idx = _torch().tensor(rows, device=logits.device)
                scores = logits[idx].float()
                if self.ignore_eos:
                    scores = scores.index_fill(1, self.eos, float("-inf"))
                sampler = _SeededSampler(temperature, top_p, [])
                sampler.generators = [jobs[r].generator for r in rows]
                tokens[idx] = sampler(None, scores).argmax(-1)
        return tokens.tolist()

    # -- the loop -----------------------------------------------------------------------------------

    def run(self, jobs: list[Job], finished, more=None):
        """Generate every job; `finished(job, tokens)` decides after each token whether the job is done
        (the engine then frees its slot). `more()`, if given, is asked between turns for jobs that join the
        queue (each must fit the cache length). Yields jobs as they finish, outside inference mode: the
        caller's code between two answers (a cache commit) runs in its own grad mode."""
        torch = _torch()
        order = lambda j: (j.arrival, len(j.prompt), j.index)  # noqa: E731
        self._check_fit(jobs)
        pending = deque(sorted(jobs, key=order))
        free = list(range(self.slots))
        active: dict[int, Job] = {}
        while True:
            new = more() if more is not None else []
            if new:
                self._check_fit(new)
                pending = deque(sorted([*pending, *new], key=order))
            if not (pending or active):
                return
            with torch.inference_mode():
                done = self._iterate(pending, free, active, finished)
            yield from done

    def _check_fit(self, jobs: list[Job]) -> None:
        if any(len(j.prompt) + j.sampling.max_tokens > self.length for j in jobs):
            raise ValueError("a request does not fit the cache length")

    def _iterate(self, pending, free, active, finished) -> list[Job]:
        """One turn of the loop: a prefill of waiting jobs when enough slots are free, then one block of
        decode steps. Returns the jobs that finished."""
        torch = _torch()
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        done: list[Job] = []
        if pending and (not active or len(free) >= min(self.admit_at, len(pending))):
            t = time.perf_counter()
            done += self._admit(pending, free, active, finished)
            sync()
            self.stats["prefill_s"] += time.perf_counter() - t
        if not active:
            return done
        t = time.perf_counter()
        b = bucket_for(self.batch_sizes, max(active) + 1)
        if not pending and bucket_for(self.batch_sizes, len(active)) < b:
            b = self._compact(active, free, bucket_for(self.batch_sizes, len(active)))
        rows = [active.get(s) for s in range(b)]
        sampled = any(j is not None and j.sampling.temperature > 0 for j in rows)
        left = max(j.sampling.max_tokens - len(j.tokens) for j in rows if j is not None)
        k = 1 if sampled else min(self.block, left)
        pos = [len(j.prompt) + len(j.tokens) - 1 if j else 0 for j in rows]
        span = bucket_for(self.spans, min(max(pos) + k, self.length))
        host = self.state_host
        host.zero_()
        host[:b] = torch.tensor([j.tokens[-1] if j else 0 for j in rows])
        host[self.slots:self.slots + b] = torch.tensor(pos)
        self.cache.state.copy_(host, non_blocking=True)
        for _ in range(k):
            logits, greedy = self._step(b, span)
        if sampled:
            made = [[token] for token in self._choose(logits, rows, greedy)]
        else:
            made = [list(col) for col in zip(*self.ring[:k, :b].tolist())]
        for slot, tokens in enumerate(made):
            job = rows[slot]
            if job is None:
                continue
            for n, token in enumerate(tokens, 1):
                job.tokens.append(token)
                if finished(job, job.tokens):
                    self.stats["wasted_steps"] += k - n
                    del active[slot]
                    heapq.heappush(free, slot)
                    done.append(job)
                    break
        self.stats["decode_steps"] += k
        self.stats["decode_blocks"] += 1
        self.stats["decode_s"] += time.perf_counter() - t
        return done

    def _admit(self, pending, free, active, finished) -> list[Job]:
        """Prefill waiting jobs into free slots, in chunks of at most `prefill_tokens` padded tokens; returns
        the jobs that finished on their first token."""
        take = []
        while pending and free:
            job = pending.popleft()
            job.slot = heapq.heappop(free)
            take.append(job)
        chunks, chunk = [], []
        for job in take:  # sorted by length, so a chunk pads little
            width = max([len(j.prompt) for j in chunk] + [len(job.prompt)])
            if chunk and (len(chunk) + 1) * width > self.prefill_tokens:
                chunks.append(chunk)
                chunk = []
            chunk.append(job)
        if chunk:
            chunks.append(chunk)
        done = []
        for chunk in chunks:
            self.stats["prefills"] += 1
            for job, token in zip(chunk, self._choose(self._prefill(chunk), chunk)):
                job.tokens.append(token)
                if finished(job, job.tokens):
                    heapq.heappush(free, job.slot)
                    done.append(job)
                else:
                    active[job.slot] = job
        return done

    def _compact(self, active, free, target: int) -> int:
        """Move the jobs of slots >= target into free slots below it, so a smaller batch bucket serves."""
        for src in sorted(s for s in active if s >= target):
            dst = heapq.heappop(free)
            self.cache.move(src, dst)
            job = active.pop(src)
            job.slot = dst
            active[dst] = job
            heapq.heappush(free, src)
        return target
