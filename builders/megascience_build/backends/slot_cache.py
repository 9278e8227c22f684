"""The static path's KV cache and attention: per-layer K/V buffers with one row (slot) per running request,
and the attention function transformers calls for them (registered under ATTENTION_NAME). The engine that
schedules requests over the slots is static_generation.py.
"""
from __future__ import annotations

import inspect

ATTENTION_NAME = "megascience_slots"


def _torch():
    import torch
    return torch


# -- attention over slots -----------------------------------------------------------------------------

def _slot_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **_kwargs):
    """Attention for the static path (registered as ATTENTION_NAME): query (b, H, q, D) against key/value
    (b, Hkv, L, D) under the boolean mask the engine built. One query token: the query heads of each K/V
    head are packed into the query axis, so K/V are read once, never repeated per head, and the scores are
    two batched matrix products around a float32 softmax. (scaled_dot_product_attention picked cuDNN's
    flash kernel for that shape on an H200: 43 us per layer for one row over 2,048 positions, a quarter of
    the whole decode step; `decode_attention="sdpa"` keeps it, for comparison.)"""
    torch = _torch()
    sdpa = torch.nn.functional.scaled_dot_product_attention
    b, heads, q_len, dim = query.shape
    groups = heads // key.shape[1]
    if q_len == 1:
        packed = query.reshape(b, key.shape[1], groups, dim)
        if _DECODE["attention"] == "sdpa":
            out = sdpa(packed, key, value, attn_mask=attention_mask, scale=scaling)
        else:
            scale = dim ** -0.5 if scaling is None else scaling
            scores = torch.matmul(packed, key.transpose(-1, -2)).float() * scale
            scores = scores.masked_fill(~attention_mask, float("-inf"))
            out = torch.matmul(torch.softmax(scores, dim=-1).to(value.dtype), value)
        out = out.reshape(b, heads, 1, dim)
    else:
        if groups > 1:
            key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
        out = sdpa(query, key, value, attn_mask=attention_mask, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


DECODE_ATTENTIONS = ("matmul", "sdpa")
_DECODE = {"attention": "matmul"}  # set by the engine before each forward (one engine runs at a time)


def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _slot_attention)


def cache_keyword(forward) -> str:
    """The keyword a model's forward (and so `generate`) takes its KV cache by: `cache` since transformers
    5.2x, `past_key_values` before (5.17, the GPU image's)."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


class SlotCache:
    """Per-layer K/V buffers (slots, kv_heads, length, head_dim), filled through the `update` call every
    attention layer makes (its signature differs between transformers versions; extra arguments are
    ignored). Prefill copies each row's keys into its slot; decode writes one position per row."""

    def __init__(self, config, slots: int, length: int, dtype, device):
        torch = _torch()
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (slots, kv_heads, length, head_dim)
        layers = config.num_hidden_layers
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.rows = torch.arange(slots, device=device)
        # the decode step's inputs, one buffer so a block needs one copy: each row's last token, the position
        # it writes next, and the step counter within the block (the ring row the step writes)
        self.state = torch.zeros(2 * slots + 1, dtype=torch.long, device=device)
        self.ids = self.state[:slots].view(slots, 1)
        self.pos = self.state[slots:2 * slots]
        self.step = self.state[2 * slots:]
        self.span = length
        self.prefill: list[tuple[int, int]] | None = None  # (slot, prompt length) per row while prefilling

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # positions are always given explicitly

    def update(self, key, value, layer_idx, *_args, **_kwargs):
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if self.prefill is not None:
            width = key.shape[2]
            for row, (slot, n) in enumerate(self.prefill):
                keys[slot, :, :n] = key[row, :, width - n:]
                values[slot, :, :n] = value[row, :, width - n:]
            return key, value
        b = key.shape[0]
        rows, pos = self.rows[:b], self.pos[:b]
        keys[rows, :, pos] = key[:, :, 0]
        values[rows, :, pos] = value[:, :, 0]
        return keys[:b, :, :self.span], values[:b, :, :self.span]

    def move(self, src: int, dst: int) -> None:
        for buf in self.keys + self.values:
            buf[dst] = buf[src]
