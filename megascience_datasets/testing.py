"""Deterministic fixture rows in the released schemas with realistic lengths, for tests and
benchmarks: TextbookReasoning questions ~64 tokens and answers ~410 tokens; MegaScience 171 and 693
(about 1.3 tokens per word). Texts are drawn from a pool of random word sequences, so generating
651,840 rows takes seconds; each row gets a unique prefix.
"""
from __future__ import annotations

import random

import pyarrow as pa

LENGTHS = {"textbook": (64, 410), "megascience": (171, 693)}   # mean tokens: question, answer
TOKENS_PER_WORD = 1.3
SUBJECTS = ["math", "medicine", "biology", "physics", "chemistry", "computer science", "economics"]
SOURCES = ["textbook", "natural_reasoning", "nemotron_science"]
_WORDS = ("energy force mass velocity reaction acid cell protein gene enzyme integral matrix vector entropy "
          "pressure volume temperature current voltage field charge particle wave photon electron molecule "
          "bond orbital equilibrium rate constant function derivative limit series proof theorem lemma "
          "therefore hence because thus we find that the of a to is and in for with by from as then compute "
          "solve estimate assume given show explain why how what which patient dose tissue organ market price "
          "demand supply cost algorithm graph node complexity memory array").split()


def _pool(rng: random.Random, size: int, mean_words: float) -> list[str]:
    out = []
    for _ in range(size):
        n = max(3, int(rng.lognormvariate(0, 0.45) * mean_words / 1.107))   # lognormal with the given mean
        out.append(" ".join(rng.choice(_WORDS) for _ in range(n)))
    return out


def fixture_table(n: int, kind: str = "textbook", seed: int = 0, tag: str = "", pool_size: int = 4096,
                  extra_columns: bool = False) -> pa.Table:
    """n rows of the released schema of `kind` ("textbook" or "megascience"); same arguments, same rows.

    extra_columns adds the build's `id` and `provenance` (the *_built feature sets)."""
    rng = random.Random(f"{kind}-{seed}")
    q_tokens, a_tokens = LENGTHS[kind]
    qs = _pool(rng, pool_size, q_tokens / TOKENS_PER_WORD)
    ans = _pool(rng, pool_size, a_tokens / TOKENS_PER_WORD)
    refs = _pool(rng, pool_size, 4)
    p = pool_size
    cols = {
        "question": [f"{tag}{i}: {qs[(i * 7919) % p]}" for i in range(n)],
        "answer": [ans[(i * 104729) % p] for i in range(n)],
        "subject": [SUBJECTS[(i * 31) % 7] for i in range(n)],
        "reference_answer": [refs[(i * 13) % p] for i in range(n)],
    }
    if kind == "megascience":
        cols["source"] = [SOURCES[(i * 17) % 3] for i in range(n)]
    if extra_columns:
        cols = {"id": [f"{seed:04d}{i:012d}" for i in range(n)], **cols,
                "provenance": ['{"origin": {"kind": "fixture"}, "signals": {}, "steps": []}'] * n}
    return pa.table(cols)
