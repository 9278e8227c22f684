"""Length bucketing for batched generation: which requests share a forward pass.

Requests are grouped by their sampling parameters (a batch shares max_tokens and stop strings), sorted by
prompt length inside a group so that a batch pads as little as possible, and cut into batches bounded by
a request count and a token budget (batch size x (longest prompt + max_tokens): the padded KV cache).
The caller puts results back in request order through the returned indices.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Hashable, Sequence


def plan_batches(lengths: Sequence[int], group_keys: Sequence[Hashable], new_tokens: Sequence[int],
                 max_batch_size: int, max_batch_tokens: int | None) -> list[list[int]]:
    """Indices of the requests in each batch. A request whose own size exceeds the budget still gets a batch
    of its own (the caller decides whether it fits the model)."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(group_keys):
        groups.setdefault(key, []).append(i)
    batches: list[list[int]] = []
    for members in groups.values():
        members.sort(key=lambda i: (lengths[i], i))
        current: list[int] = []
        longest = 0
        for i in members:
            candidate_longest = max(longest, lengths[i] + new_tokens[i])
            too_many = len(current) >= max_batch_size
            too_big = max_batch_tokens is not None and (len(current) + 1) * candidate_longest > max_batch_tokens
            if current and (too_many or too_big):
                batches.append(current)
                current, candidate_longest = [], lengths[i] + new_tokens[i]
            current.append(i)
            longest = candidate_longest
        if current:
            batches.append(current)
    return batches


def sampling_group_key(sampling) -> tuple:
    """Requests that may share a batch: same sampling parameters apart from the seed (seeds are per row)."""
    d = asdict(sampling)
    d.pop("seed", None)
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))

