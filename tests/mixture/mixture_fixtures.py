"""Helpers for the mixture tests: stage contexts (the engine's real one), a scripted generator, upstream-schema
parquet files."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from megascience_build.backends.base import GenerationRequest, GenerationResult, SamplingParams
from support.models import RecordingModel
from support.stage_context import stage_context


# ------------------------------------------------------------------------------------------ stage context
@dataclass
class ScriptedGen(RecordingModel):
    """A recording model whose answers report 10 prompt tokens."""
    model_id: str = "scripted/model"
    revision: str = "test"
    prompt_tokens: int = 10


def stage_ctx(models: dict, prompts: dict, sampling: SamplingParams = SamplingParams(temperature=0.7, max_tokens=512),
              seed: int = 0, default_role: str | None = None):
    """The engine's StageContext (tests/support) with `models` (role -> generator) and prompt files by slot;
    ctx.llm() is `default_role`'s model."""
    return stage_context(models=models, prompts=prompts, sampling=sampling, seed=seed, llm_role=default_role)


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


# ------------------------------------------------------------------------------------------ scripted models
# Question i (the number after "question" in the prompt) gets: a reference response of 100*(i+1) tokens, or
# 20,000 when i % 9 == 8 (over the 10k limit); grades by i % 4 (easy: mean 10, medium: 5, unsolved: 0,
# boundary: exactly 1); an annotation of 200 tokens, or 5,000 when i % 7 == 6 (over the 4,096 limit).
GRADES = {0: [10, 10, 10, 10], 1: [3, 7, 5, 5], 2: [0, 0, 0, 0], 3: [1, 1, 1, 1]}


def index_of(text: str) -> int:
    return int(re.search(r"question (\d+)", text).group(1))


def respond_reference(r):
    i = index_of(user_text(r))
    return GenerationResult("ref", "stop", 10, 20_000 if i % 9 == 8 else 100 * (i + 1))


def respond_policy(r):
    return f"attempt {r.sample_index} for question {index_of(user_text(r))}"


def respond_grader(r):
    text = user_text(r)
    i = index_of(text.split("Student's answer:")[1])
    s = int(re.search(r"attempt (\d+)", text).group(1))
    return f"Compared.\nScore: {GRADES[i % 4][s % 4]}"


def respond_annotator(r):
    i = index_of(user_text(r))
    return GenerationResult(f"Step 1. ...\n\\boxed{{{i}}}", "stop", 10, 5_000 if i % 7 == 6 else 200)


def expected_difficulty_n(indices, has_reference, k=4, low=1, high=9, strict=True):
    means = [sum(GRADES[i % 4][:k]) / k for i, ok in zip(indices, has_reference) if ok]
    return sum((low < m < high) if strict else (low <= m <= high) for m in means)
