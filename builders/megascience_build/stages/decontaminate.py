"""Stage 8: remove training questions that are (paraphrases of) benchmark questions.

Three steps per row, cheapest first:
1. exact: the normalised question equals a benchmark question            -> drop "contaminated_exact"
2. n-gram: it shares a 13-word window with a benchmark question          -> drop "contaminated_ngram"
   (shorter benchmark questions of >= 8 words count as one whole window; see contamination/matching.py)
3. judge: embed it, take the top_k (5) most similar benchmark questions (cosine over the pooled index of
   all selected benchmarks), and ask the LLM whether each pair is the same question (prompt slot
   "judge"). Any YES                                                        -> drop "contaminated_judge"

Judgement outcomes: YES/NO as parsed by replies.parse_decision. An unparseable reply counts as
"unparseable_judgement" and is treated as NO (the paper does not say what it did; the authors' code drops a
row only when all 5 are unparseable, available as drop_if_all_unparseable: true). A reply that hit
max_tokens or failed ("length"/"error") is not an answer: unless another neighbour was judged YES, the row is
dropped with "generation_<reason>", as for every LLM stage.

Prompts (slot "judge"): decontam_judge.txt asks for a short analysis, then "Decision: YES/NO" (the paper's
shape; give it max_tokens >= 256). decontam_judge_brief.txt asks for the decision line only, for small models
on a CPU: use it with sampling {max_tokens: 16, stop: ["\n"]} so a reply ends at the decision line instead
of running into max_tokens (which would drop the row as generation_length).

`min_similarity` (default null = the paper: every top-k pair goes to the judge) skips pairs whose cosine is
below the floor. On planted leaks with all-MiniLM-L6-v2, floors of 0.5 / 0.7 cut judge calls by 27 % / 64 %
with no recall lost on light edits (BENCHMARKS.md, Decontamination); real paraphrases score lower, so the
floor is a speed option for CPU runs, not the default.

Kind "map": the stage object reads the benchmark files once per process (again if they change), so shards
run in parallel and resume like any other map stage. The benchmark embeddings are an artifact of their own
(BenchmarkIndex.embeddings), kept in `index_cache_dir` (default: the artifact cache, see
engine.storage.artifact_cache_dir) under a key of the questions' content and the embedder's identity, so a
fresh work directory reuses them. The shard fingerprint covers each benchmark file's sha256 (side_inputs):
an edited benchmark file recomputes this stage.

Counters: "contaminated:<benchmark>:<exact|ngram|judge>" per removed row, plus judge_calls, judge_yes,
judge_no, unparseable_judgement, judge_generation_<reason>, pairs_below_floor, rows_judged.
`contamination_report(counters)` turns them into the per-benchmark table; write_contamination_report
writes it as markdown and JSON.
"""
from __future__ import annotations

import io
import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from ..backends.base import GenerationRequest
from ..backends.identity import ModelIdentity, canonical_json, identity_of, sha256_text
from ..contamination.registry import (BenchmarkError, BenchmarkQuestion, fingerprint, load_benchmarks,
                                   load_registry, resolved_sources)
from ..contamination.matching import NgramIndex, top_k
from ..engine import records
from ..engine.records import ID, PROVENANCE
from ..engine.llm_stage import LLMStage
from ..engine.params import param
from ..engine.stage import Stage, StageError, StageOutput
from ..engine.storage import artifact_cache_dir, publish_dir, write_atomic

# Shards in flight share the stage object: the index and the benchmark embeddings are built once, by the
# first shard that needs them, while the others wait.
_BUILD_LOCK = threading.RLock()
from .replies import parse_decision

METHODS = ("exact", "ngram", "judge")
COUNTER_PREFIX = "contaminated:"
MATCH_PREFIX = "matched:"          # matched:<benchmark>:<question id>:<method> -> rows removed for it


def match_counter(question: BenchmarkQuestion, method: str) -> str:
    return f"{MATCH_PREFIX}{question.benchmark}:{question.id}:{method}"


@dataclass
class BenchmarkIndex:
    """The pooled benchmark questions and their n-gram index; `fingerprint` is the sha256 over the question
    ids (content hashes of benchmark name and text), `sources` what they were read from (resolved_sources)."""
    questions: list[BenchmarkQuestion]
    ngrams: NgramIndex
    fingerprint: str
    sources: list[dict[str, Any]]
    _vectors: dict[str, np.ndarray] = field(default_factory=dict)   # artifact key -> embeddings, this process

    def embeddings(self, embedder, identity: ModelIdentity | None = None,
                   cache_dir: str | os.PathLike | None = None) -> np.ndarray:
        """The questions' embeddings, an artifact of their own: <cache_dir>/benchmark-embeddings-<key>/ keyed
        by the questions' content and the embedder's resolved identity, built once and reused by every
        later run (an unreadable or mis-shaped artifact is rebuilt)."""
        identity = identity or identity_of(embedder, "embedder")
        key = sha256_text(canonical_json({"questions": self.fingerprint, "embedder": identity.digest}))[:24]
        with _BUILD_LOCK:
            if key not in self._vectors:
                self._vectors[key] = self._load_or_embed(embedder, identity, key, cache_dir)
            return self._vectors[key]

    def _load_or_embed(self, embedder, identity: ModelIdentity, key: str, cache_dir) -> np.ndarray:
        folder = Path(cache_dir) / f"benchmark-embeddings-{key}" if cache_dir else None
        try:
            vecs = np.load(folder / "embeddings.npy") if folder else None
            if vecs is not None and vecs.shape[0] == len(self.questions):
                return vecs
        except (OSError, ValueError):
            pass
        vecs = np.asarray(embedder.encode([q.text for q in self.questions]), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(self.questions):
            raise StageError(f"embedder {identity} returned {vecs.shape[0]} vectors for "
                             f"{len(self.questions)} benchmark questions")
        if folder is None:
            return vecs
        buf = io.BytesIO()
        np.save(buf, vecs)
        about = {"questions": len(self.questions), "question_ids_sha256": self.fingerprint,
                 "embedder": identity.as_dict(), "sources": self.sources}
        publish_dir(folder, {"embeddings.npy": buf.getvalue(),
                             "index.json": (json.dumps(about, indent=2) + "\n").encode()})
        return vecs


def benchmark_index(registry: str | None, benchmarks: str | Sequence[str], ngram: int, min_words: int,
                    frequent_phrases: Sequence[str] = ()) -> BenchmarkIndex:
    """Read the selected benchmarks and build their pooled index."""
    specs = load_registry(_registry_path(registry)).select(benchmarks)
    questions = load_benchmarks(specs)
    ngrams = NgramIndex([q.text for q in questions], n=ngram, min_words=min_words,
                        exact_aliases=[q.stem for q in questions], frequent_phrases=frequent_phrases)
    return BenchmarkIndex(questions, ngrams, fingerprint(questions), resolved_sources(specs))


def _registry_path(registry: str | None) -> str | None:
    if registry is None or os.path.isabs(registry) or os.path.exists(registry):
        return registry
    packaged = Path(__file__).resolve().parent.parent / "pipelines" / registry
    return str(packaged) if packaged.exists() else registry


def _search_device(value: str) -> bool:
    return value in ("cpu", "auto") or value.startswith("cuda")


class Decontaminate(Stage):
    name = "decontaminate"
    summary = ("drop questions that match a benchmark question: exact, 13-gram, or embedding top-k + LLM judge "
               "(paper §2.5; bge-large-en-v1.5, top-5, Llama-3.3-70B judge)")
    kind = "map"
    inputs = (ID, PROVENANCE, "question")
    outputs = ()
    default_prompts = {"judge": "decontam_judge.txt"}     # not required: rows that reach the judge need it

    @dataclass(frozen=True)
    class Params:
        registry: str | None = param(None, "benchmark registry YAML (null: the packaged pipelines/benchmarks.yaml)")
        benchmarks: str | list[str] = param("paper", "a set name, or a list of benchmark / set names")
        question_field: str = param("question", "the column holding the question text")
        ngram: int = param(13, "words per n-gram window", min=1)
        ngram_min_words: int = param(8, "shorter benchmark questions (of at least this many words) count as "
                                        "one whole window", min=1)
        frequent_phrases: list[str] = param([], "stock phrases that are never n-gram evidence")
        top_k: int = param(5, "nearest benchmark questions sent to the judge", min=1)
        min_similarity: float | None = param(None, "pairs below this cosine are not judged (null: judge every "
                                                   "top-k pair, the paper)", min=-1, max=1)
        drop_if_all_unparseable: bool = param(False, "drop a row whose judgements are all unparseable (the "
                                                     "authors' code)")
        index_cache_dir: str | None = param(None, "where the benchmark embeddings are kept (null: "
                                                  "$MEGASCIENCE_ARTIFACT_CACHE or ~/.cache/megascience/artifacts)")
        search_device: str = param("cpu", "top-k search on cpu (numpy), cuda[:N], or auto (the GPU if torch "
                                          "sees one)")

        def __post_init__(self):
            if not self.question_field:
                raise ValueError("question_field must be a column name")
            if not self.ngram_min_words <= self.ngram:
                raise ValueError(f"need integers 1 <= ngram_min_words <= ngram, got ngram={self.ngram!r}, "
                                 f"ngram_min_words={self.ngram_min_words!r}")
            if not _search_device(self.search_device):
                raise ValueError("search_device must be cpu, cuda[:N] or auto")
            if not self.benchmarks:
                raise ValueError("benchmarks must name a set or list benchmarks")
            if not all(x.strip() for x in self.frequent_phrases):
                raise ValueError("frequent_phrases must be a list of non-empty strings")

    def __init__(self, params=None, **kw):
        super().__init__(params, **kw)
        p = self.settings
        self.inputs = (ID, PROVENANCE, p.question_field)
        try:   # names are checked now; the questions are read when the first batch arrives
            load_registry(_registry_path(p.registry)).select(p.benchmarks)
        except BenchmarkError as e:
            raise StageError(f"stage {self.label!r}: {e}") from None
        self._index: BenchmarkIndex | None = None

    def preflight(self) -> None:
        """Before any stage runs: read and check every selected benchmark (file found and readable, the
        question field present and non-empty in every record, Hub revisions pinned)."""
        try:
            self.index()
        except BenchmarkError as e:
            raise StageError(f"stage {self.label!r}: {e}") from None

    def side_inputs(self) -> list[dict[str, Any]]:
        """Each selected benchmark's files by sha256 (or Hub commit) and fields: an edited benchmark file
        changes this stage's fingerprint."""
        p = self.settings
        return resolved_sources(load_registry(_registry_path(p.registry)).select(p.benchmarks))

    def index(self) -> BenchmarkIndex:
        """Built on first use by this stage object (one per process) and rebuilt when the files change."""
        p = self.settings
        sources = self.side_inputs()
        with _BUILD_LOCK:
            if self._index is None or self._index.sources != sources:
                self._index = benchmark_index(p.registry, p.benchmarks, p.ngram, p.ngram_min_words,
                                              p.frequent_phrases)
            return self._index

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        p = self.settings
        index = self.index()
        questions = batch.column(p.question_field).to_pylist()
        counters: Counter[str] = Counter()
        dropped: list[tuple[int, str]] = []
        signals: dict[int, dict[str, Any]] = {}

        to_judge: list[int] = []
        for i, q in enumerate(questions):
            if not isinstance(q, str) or not q.strip():
                dropped.append((i, "missing_question"))
                continue
            method, hit = "exact", index.ngrams.match_exact(q)
            if hit is None:
                method, hit = "ngram", index.ngrams.match_ngram(q)
            if hit is not None:
                dropped.append((i, f"contaminated_{method}"))
                counters[f"{COUNTER_PREFIX}{index.questions[hit].benchmark}:{method}"] += 1
                counters[match_counter(index.questions[hit], method)] += 1
            else:
                to_judge.append(i)

        step: dict[str, Any] = {"stage": self.label, "benchmarks": sorted({q.benchmark for q in index.questions}),
                                "benchmark_index_sha256": index.fingerprint}
        if to_judge:
            embedder = ctx.embedder()
            llm = ctx.llm()
            template = ctx.prompt("judge")
            embedder_id = ctx.identity()          # the embedder role
            step.update(model=llm.model_id, revision=llm.revision, prompt=template.name,
                        prompt_sha256=template.sha256, embedder=embedder_id.model,
                        embedder_revision=embedder_id.revision)
            query_vecs = np.asarray(embedder.encode([questions[i] for i in to_judge]), dtype=np.float32)
            bench_vecs = index.embeddings(embedder, embedder_id, p.index_cache_dir or artifact_cache_dir())
            positions, sims = top_k(query_vecs, bench_vecs, p.top_k, device=p.search_device)
            requests, pairs = [], []
            for row, i in enumerate(to_judge):
                for pos, sim in zip(positions[row], sims[row]):
                    if p.min_similarity is not None and sim < p.min_similarity:
                        counters["pairs_below_floor"] += 1
                        continue
                    messages = template.render(question=questions[i], candidate=index.questions[pos].text)
                    requests.append(GenerationRequest(messages=messages, sampling=ctx.sampling))
                    pairs.append((row, int(pos), float(sim)))
            results = llm.generate(requests) if requests else []
            if len(results) != len(requests):
                raise StageError(f"stage {self.label!r}: the judge returned {len(results)} results "
                                 f"for {len(requests)} requests")
            verdicts = self._tally(pairs, results, len(to_judge), counters)
            for row, i in enumerate(to_judge):
                reason, signal = self._decide(verdicts[row], positions[row], sims[row], index, counters)
                if reason:
                    dropped.append((i, reason))
                else:
                    signals[i] = signal

        dropped.sort()
        gone = {i for i, _ in dropped}
        keep = [i for i in range(batch.num_rows) if i not in gone]
        kept = batch.take(pa.array(keep, pa.int64())) if len(keep) < batch.num_rows else batch
        kept = records.add_step(kept, step, [signals.get(i) for i in keep])
        return StageOutput(kept=kept, dropped=dropped, counters=dict(counters))

    @staticmethod
    def _tally(pairs, results, n_rows: int, counters: Counter) -> list[dict[str, Any]]:
        verdicts = [{"yes": [], "no": 0, "unparseable": 0, "failed": [], "judged": 0} for _ in range(n_rows)]
        for (row, pos, sim), result in zip(pairs, results):
            v = verdicts[row]
            v["judged"] += 1
            counters["judge_calls"] += 1
            failed = LLMStage.failure(result)
            if failed:
                v["failed"].append(result.finish_reason)
                counters[f"judge_{failed}"] += 1
                continue
            decision = parse_decision(result.text)
            if decision is None:
                v["unparseable"] += 1
                counters["unparseable_judgement"] += 1
            elif decision:
                v["yes"].append((pos, sim))
                counters["judge_yes"] += 1
            else:
                v["no"] += 1
                counters["judge_no"] += 1
        return verdicts

    def _decide(self, v, positions, sims, index: BenchmarkIndex, counters: Counter):
        if v["judged"]:
            counters["rows_judged"] += 1
        if v["yes"]:
            pos, _ = max(v["yes"], key=lambda x: x[1])
            counters[f"{COUNTER_PREFIX}{index.questions[pos].benchmark}:judge"] += 1
            counters[match_counter(index.questions[pos], "judge")] += 1
            return "contaminated_judge", None
        if v["failed"]:
            return f"generation_{v['failed'][0]}", None
        if self.settings.drop_if_all_unparseable and v["judged"] and v["unparseable"] == v["judged"]:
            return "unparseable_judgement", None
        nearest = index.questions[int(positions[0])] if len(positions) else None
        decision = ("below_floor" if not v["judged"] else
                    "not_same" if v["no"] else "unparseable")
        return None, {"decontamination": {
            "nearest_benchmark": nearest.benchmark if nearest else None,
            "nearest_question_id": nearest.id if nearest else None,
            "similarity": round(float(sims[0]), 4) if len(sims) else None,
            "decision": decision, "judged": v["judged"], "judged_no": v["no"],
            "unparseable": v["unparseable"]}}


# -- the per-benchmark report ------------------------------------------------------------------------------

def contamination_report(counters: Mapping[str, int], index: BenchmarkIndex | None = None) -> dict[str, Any]:
    """{"benchmarks": {name: {"exact": n, "ngram": n, "judge": n, "total": n}}, "total": {...}, "judge": {...},
    "matches": [{benchmark, question_id, method, rows[, question]}]} from a stage's (or a whole run's summed)
    counters; with the stage's `index`, each matched benchmark question's text too."""
    table: dict[str, dict[str, int]] = {}
    for key, n in counters.items():
        if not key.startswith(COUNTER_PREFIX):
            continue
        bench, _, method = key[len(COUNTER_PREFIX):].rpartition(":")
        if method not in METHODS:
            continue
        row = table.setdefault(bench, {m: 0 for m in METHODS})
        row[method] += int(n)
    for row in table.values():
        row["total"] = sum(row[m] for m in METHODS)
    total = {m: sum(r[m] for r in table.values()) for m in (*METHODS, "total")}
    judge = {k: int(v) for k, v in counters.items()
             if k in ("judge_calls", "judge_yes", "judge_no", "unparseable_judgement", "pairs_below_floor",
                      "rows_judged") or k.startswith("judge_generation_")}
    texts = {q.id: q.text for q in index.questions} if index is not None else {}
    matches = []
    for key, n in sorted(counters.items()):
        if key.startswith(MATCH_PREFIX):
            bench, qid, method = key[len(MATCH_PREFIX):].rsplit(":", 2)
            entry = {"benchmark": bench, "question_id": qid, "method": method, "rows": int(n)}
            if qid in texts:
                entry["question"] = texts[qid]
            matches.append(entry)
    return {"benchmarks": dict(sorted(table.items())), "total": total, "judge": judge, "matches": matches}


def report_markdown(report: Mapping[str, Any]) -> str:
    lines = ["| benchmark | exact | n-gram | judge | total |", "| --- | ---: | ---: | ---: | ---: |"]
    for bench, row in report["benchmarks"].items():
        lines.append(f"| {bench} | {row['exact']:,} | {row['ngram']:,} | {row['judge']:,} | {row['total']:,} |")
    t = report["total"]
    lines.append(f"| **total** | {t['exact']:,} | {t['ngram']:,} | {t['judge']:,} | {t['total']:,} |")
    if report["judge"]:
        lines += ["", "Judge: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report["judge"].items()))]
    if report.get("matches"):
        lines += ["", "| benchmark | question id | method | rows removed | benchmark question |",
                  "| --- | --- | --- | ---: | --- |"]
        for m in report["matches"]:
            text = " ".join(m.get("question", "").split())[:160].replace("|", "\\|")
            lines.append(f"| {m['benchmark']} | `{m['question_id']}` | {m['method']} | {m['rows']:,} | {text} |")
    return "\n".join(lines) + "\n"


def write_contamination_report(counters: Mapping[str, int], out_dir: str | os.PathLike,
                               stem: str = "decontamination", index: BenchmarkIndex | None = None
                               ) -> tuple[Path, Path]:
    """Write <stem>.md and <stem>.json into out_dir (each atomically); return their paths."""
    report = contamination_report(counters, index)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, text in ((".md", report_markdown(report)), (".json", json.dumps(report, indent=2) + "\n")):
        path = out / f"{stem}{suffix}"
        write_atomic(path, text.encode("utf-8"))
        paths.append(path)
    return paths[0], paths[1]
