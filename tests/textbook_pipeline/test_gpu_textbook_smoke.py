"""benchmarks/gpu_textbook.py runs end to end on a CPU with --smoke (SmolLM2 and MiniLM from the wheels) and
writes its JSON with rows/s and tokens/s for both stages."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pyarrow as pa

from textbook_e2e_lib import REPO


def test_gpu_textbook_smoke_on_cpu(tmp_path):
    out = tmp_path / "gpu_textbook.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_textbook.py"), "--smoke", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["corpus"]["replicated_to"] == 3 and result["corpus"]["chunks"] >= 21
    extract, decontam = result["extract_qa"], result["decontaminate"]
    assert extract["rows_in"] == 3 and extract["requests"] == 3 and extract["cache_hits"] == 0
    assert extract["completion_tokens"] > 0 and extract["completion_tokens_per_s"] > 0
    assert extract["prompt_tokens"] > 3 * 200                      # 256-token chunks inside the prompt
    assert decontam["rows_in"] == 8 and decontam["rows_per_s"] > 0
    # the planted benchmark question is found (exact match), whatever SmolLM2 judges
    assert decontam["dropped"].get("contaminated_exact", 0) >= 1
    assert decontam["rows_in"] == decontam["rows_out"] + sum(decontam["dropped"].values())
    assert "| extract_qa |" in proc.stdout and "| decontaminate |" in proc.stdout


def test_replicated_chunks_are_distinct_requests():
    spec = importlib.util.spec_from_file_location("gpu_textbook", REPO / "benchmarks" / "gpu_textbook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "one two three four five six seven\neight nine ten"
    chunks = pa.table({"id": ["c0", "c1", "tail"], "provenance": ['{"origin": {"book_id": "b"}}'] * 3,
                       "text": [text, "alpha beta gamma delta", "end"], "num_tokens": [10, 5, 1]})
    copies = module.replicate(chunks, 6)
    texts, ids = copies.column("text").to_pylist(), copies.column("id").to_pylist()
    assert len(set(ids)) == 6 and texts[0] == text and texts[1] == "alpha beta gamma delta"
    assert len(set(texts)) == 6 and "end" not in texts     # every copy is a new prompt; short tails not copied
    assert all(sorted(t.split(" ")) == sorted(text.split(" ")) for t in texts[0::2])   # same words, same length
    assert [json.loads(p)["origin"]["replica"] for p in copies.column("provenance").to_pylist()] == [0, 0, 1, 1, 2, 2]
