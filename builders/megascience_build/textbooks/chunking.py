"""Split a book into token windows that break at paragraph boundaries when they can, else at a
sentence end, else between words, else between tokens.

A window never holds more than `window` tokens of the chunk text tokenized on its own (special tokens
not counted): candidate cuts come from one tokenization of the whole book (offsets), and every chunk is
re-counted; a chunk over the limit (a tokenizer whose merges differ at the cut) is cut again shorter."""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from .tokenizer import NamedTokenizer

_PARAGRAPH_END = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+")


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int          # char offsets in the book text (stripped of surrounding whitespace)
    end: int
    text: str
    num_tokens: int
    first_page: int
    last_page: int


@dataclass(frozen=True)
class ChunkParams:
    window: int = 4096
    overlap: int = 0        # tokens repeated from the end of the previous chunk
    min_fill: float = 0.5   # a paragraph/sentence cut must leave the chunk at least this full

    def __post_init__(self):
        if self.window < 16:
            raise ValueError(f"window must be at least 16 tokens, got {self.window}")
        if not 0 <= self.overlap < self.window // 2:
            raise ValueError(f"overlap must be in [0, window/2), got {self.overlap}")
        if not 0.0 <= self.min_fill <= 1.0:
            raise ValueError(f"min_fill must be in [0, 1], got {self.min_fill}")


def page_of(char: int, page_offsets: list[int], page_numbers: list[int]) -> int:
    i = max(0, bisect.bisect_right(page_offsets, char) - 1)
    return page_numbers[i]


def chunk_books(texts: list[str], page_offsets: list[list[int]], page_numbers: list[list[int]],
                tok: NamedTokenizer, params: ChunkParams) -> list[list[Chunk]]:
    """Chunks of every book. Fast path: one encode_batch over the books for offsets, cuts planned from
    the offsets, one encode_batch over all planned chunks to re-count them; only a book with a chunk
    over the window (its tokenizer merges differently at a cut) is planned again chunk by chunk."""
    encodings = tok.tokenizer.encode_batch(texts, add_special_tokens=False)
    starts = [[o[0] for o in enc.offsets] for enc in encodings]
    plans = [_plan(text, st, params, None) for text, st in zip(texts, starts)]
    flat = [text[s:e] for text, plan in zip(texts, plans) for s, e, _ in plan]
    counts = iter(tok.count(flat))
    result = []
    for text, st, plan, offs, nums in zip(texts, starts, plans, page_offsets, page_numbers):
        spans = [(s, e, next(counts)) for s, e, _ in plan]
        if any(c > params.window for _, _, c in spans):
            spans = [(s, e, c) for s, e, c in _plan(text, st, params, tok)]
        result.append([Chunk(index=k, start=s, end=e, text=text[s:e], num_tokens=c,
                             first_page=page_of(s, offs, nums), last_page=page_of(e - 1, offs, nums))
                       for k, (s, e, c) in enumerate(spans)])
    return result


def _plan(text: str, token_starts: list[int], params: ChunkParams,
          verify: NamedTokenizer | None) -> list[tuple[int, int, int]]:
    """(start, end, tokens) of each chunk; with `verify`, every chunk is re-counted on its own and cut
    shorter until it fits (tokens is -1 without it)."""
    paragraphs = [m.end() for m in _PARAGRAPH_END.finditer(text)]
    sentences = [m.end() for m in _SENTENCE_END.finditer(text)]
    n = len(token_starts)
    spans: list[tuple[int, int, int]] = []
    i = 0
    while i < n:
        budget = params.window
        while True:
            end, next_i = _cut(text, token_starts, i, budget, paragraphs, sentences, params.min_fill)
            s, e = _strip(text, token_starts[i], end)
            count = verify.count([text[s:e]])[0] if verify is not None and e > s else -1
            if count <= params.window:
                break
            if budget <= 1:
                raise ValueError(f"a single token re-counts as {count} tokens on its own, more than the "
                                 f"window of {params.window}: this tokenizer cannot be used for chunking")
            budget -= count - params.window + 8   # the text re-tokenized differently at the cut: shorten
        if e > s:
            spans.append((s, e, count))
        i = max(next_i - params.overlap, i + 1) if next_i < n else n
    return spans


def _cut(text, token_starts, i, budget, paragraphs, sentences, min_fill) -> tuple[int, int]:
    """End char of a chunk starting at token i holding at most `budget` tokens, and the next token index."""
    j = i + max(budget, 1)
    if j >= len(token_starts):
        return len(text), len(token_starts)
    limit = token_starts[j]
    floor = token_starts[i + int(min_fill * (j - i))]     # the chunk keeps at least min_fill of the window
    for boundaries in (paragraphs, sentences):
        k = bisect.bisect_right(boundaries, limit) - 1
        if k >= 0 and boundaries[k] > floor:
            end = boundaries[k]
            return end, bisect.bisect_left(token_starts, end)
    space = max(text.rfind(" ", floor, limit), text.rfind("\n", floor, limit))
    if space > floor:                                      # between words rather than inside one
        return space, bisect.bisect_left(token_starts, space)
    return limit, j


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
