"""`megascience-eval`: score a model on the paper's benchmarks (or local files) and report like Tables 6-7.

    megascience-eval run --benchmarks offline --backend transformers --model smollm2 --sample 20 --work W
    megascience-eval report --work W                   # rewrite scores.json, eval_report.md, eval_scores.png
    megascience-eval compare W1 W2 --out DIR           # two models / two training configurations side by side
    megascience-eval benchmarks                        # what the eval registry declares

Exit codes: 0 success; 2 configuration or input error (found before any work); 1 run failure (a rerun
resumes from the request cache); 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
DEFAULT_TEMPLATE = {"multiple_choice": "multiple_choice", "true_false": "true_false", "numeric": "math",
                    "math": "math", "numeric_unit": "quantity", "free_text": "free_text"}


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return key, value
    if isinstance(parsed, (dict, list)) and not value.lstrip().startswith(("[", "{")):
        return key, value                       # "Answer: A" is text, not a mapping
    return key, parsed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="megascience-eval", description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate a model (resumes from the request cache)")
    run.add_argument("--work", type=Path, required=True, help="work directory (created if missing)")
    run.add_argument("--benchmarks", action="append", default=[], metavar="NAME",
                     help="a set (offline, paper, authors_files) or entry of the eval registry (repeatable)")
    run.add_argument("--registry", type=Path, help="eval registry YAML (default: the packaged benchmarks.yaml)")
    run.add_argument("--data-dir", type=Path, help="folder of the registry's relative `file:` paths")
    run.add_argument("--file", type=Path, help="a local benchmark file (json, jsonl, csv, parquet, arrow)")
    run.add_argument("--type", choices=sorted(DEFAULT_TEMPLATE), help="--file: question type")
    run.add_argument("--question", help="--file: field path of the question")
    run.add_argument("--answer", help="--file: field path of the gold answer")
    run.add_argument("--options", action="append", default=[], help="--file: field path(s) of the options")
    run.add_argument("--answer-format", default=None, help="--file: letter, index, text, bool, gsm8k, boxed, ...")
    run.add_argument("--name", default=None, help="--file: the benchmark's name (default: the file stem)")
    run.add_argument("--paper", default=None, help="--file: the paper benchmark it scores, e.g. GSM8K (default: --name)")
    run.add_argument("--backend", default="transformers", help="transformers, vllm, openai, scripted, or module:factory")
    run.add_argument("--model", required=True, help="model id, local path or alias (smollm2)")
    run.add_argument("--revision", help="model revision (Hub commit)")
    run.add_argument("--option", action="append", default=[], type=_option, metavar="KEY=VALUE",
                     help="backend option (repeatable), e.g. max_batch_size=8 or base_url=http://...")
    run.add_argument("--batch-size", type=int, default=None,
                     help="requests per backend call, i.e. per cache commit (default: the transformers backend's "
                          "max_batch_size, so a killed CPU run loses at most one batch; 64 for other backends)")
    run.add_argument("--sample", type=int, help="a seeded sample of N questions per benchmark entry")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--max-tokens", type=int, default=None, help="default: the paper's 10240")
    run.add_argument("--temperature", type=float, default=None, help="default: 0 (greedy), as the paper")
    run.add_argument("--executor", choices=("local", "ray"), default="local")
    run.add_argument("--cache", help="request cache file (default WORK/cache.sqlite)")
    run.add_argument("--cache-only", action="store_true", help="replay from the cache; a miss is an error")
    run.add_argument("--rows-per-shard", type=int, default=1024,
                     help="questions per work shard (a kill loses at most one backend call, see --batch-size)")
    run.add_argument("--shards-in-flight", type=int, default=8,
                     help="shards run at once, feeding the backend one request window (a GPU path wants "
                          "hundreds of requests waiting: rows per shard x shards in flight)")
    run.add_argument("--published", action="append", default=None,
                     help="published model(s) to show beside the run (default: the one the model id matches)")
    run.add_argument("--progress", action="store_true")
    rep = sub.add_parser("report", help="rewrite the scores and report of a finished run")
    rep.add_argument("--work", type=Path, required=True)
    rep.add_argument("--published", action="append", default=None)
    cmp_ = sub.add_parser("compare", help="one report and plot for several runs")
    cmp_.add_argument("works", type=Path, nargs="+")
    cmp_.add_argument("--out", type=Path, required=True)
    cmp_.add_argument("--label", action="append", default=[], help="run labels, in order (default: folder names)")
    cmp_.add_argument("--published", action="append", default=None)
    ls = sub.add_parser("benchmarks", help="list the eval registry")
    ls.add_argument("--registry", type=Path)
    ls.add_argument("--data-dir", type=Path)
    return p


def default_batch_size(backend: str, options: dict[str, Any]) -> int:
    """Requests per backend call (and cache commit). The transformers backend answers a call only when all
    of it is done, so there one call is one of its batches; servers and vLLM stream or batch larger."""
    if backend == "transformers":
        return int(options.get("max_batch_size") or 16)
    return 64


def _file_spec(args):
    from .benchmarks import spec_from_entry
    if not (args.type and args.question and (args.answer or args.answer_format in ("first_option", "scores"))):
        raise ValueError("--file needs --type, --question and --answer")
    name = args.name or args.file.stem
    entry = {"paper": args.paper or name, "source": {"file": {"path": str(args.file.resolve())}}, "type": args.type,
             "template": DEFAULT_TEMPLATE[args.type], "question": args.question, "answer": args.answer,
             "answer_format": args.answer_format or ("letter" if args.type == "multiple_choice" else
                                                     "bool" if args.type == "true_false" else "text"),
             "options": args.options or None}
    return spec_from_entry(name, entry, base_dir=Path.cwd())


def load_run(work: Path, label: str | None = None) -> dict[str, Any]:
    import pyarrow.parquet as pq
    from .run import INSTANCES, collect, run_info
    from .scores import compute_scores
    table = pq.read_table(work / INSTANCES) if (work / INSTANCES).exists() else collect(work)
    return {"label": label or work.name, "scores": compute_scores(table.to_pylist()), "info": run_info(work)}


def _published_for(runs: list[dict[str, Any]], asked: list[str] | None) -> list[str]:
    from .published import lookup, match_model
    if asked is not None:
        names = [n for n in asked if n.lower() != "none"]
        for n in names:
            lookup(n)
        return names
    found = []
    for r in runs:
        ident = (r["info"].get("identity") or {}).get("model") or (r["info"].get("model") or {}).get("model")
        name = match_model(ident)
        if name and name not in found:
            found.append(name)
    return found


def write_outputs(out: Path, runs: list[dict[str, Any]], published: list[str], stem: str = "eval") -> str:
    from megascience_build.engine.storage import write_atomic, write_json_atomic
    from .report import render_markdown, render_png
    out.mkdir(parents=True, exist_ok=True)
    md = render_markdown(runs, published)
    write_atomic(out / f"{stem}_report.md", md.encode("utf-8"))
    write_atomic(out / f"{stem}_scores.png", render_png(runs, published))
    write_json_atomic(out / ("scores.json" if len(runs) == 1 else f"{stem}_scores.json"),
                      {r["label"]: r["scores"] for r in runs} if len(runs) > 1 else runs[0]["scores"])
    return md


def cmd_run(args) -> int:
    from megascience_build.engine.stage import StageError
    from .benchmarks import EvalSpecError, load_eval_registry
    from .run import execute, prepare
    try:
        specs = []
        if args.benchmarks:
            chosen = load_eval_registry(args.registry, data_dir=args.data_dir).select(args.benchmarks)
            withheld = [s.name for s in chosen if s.withheld and s.name not in args.benchmarks]
            if withheld:                        # in a set (`paper`): skipped, said; named alone: an error below
                print(f"megascience-eval: skipping {', '.join(withheld)}: gold answers not public "
                      f"(`megascience-eval benchmarks` says why)", file=sys.stderr)
            specs += [s for s in chosen if s.name not in withheld]
        if args.file:
            specs.append(_file_spec(args))
        if not specs:
            raise ValueError("name --benchmarks (e.g. offline) or a --file")
        options = dict(args.option)
        model = {"backend": args.backend, "model": args.model, "batch_size": args.batch_size or default_batch_size(
            args.backend, options), "options": options}
        if args.revision:
            model["revision"] = args.revision
        sampling = {k: v for k, v in (("max_tokens", args.max_tokens), ("temperature", args.temperature),
                                      ("seed", args.seed)) if v is not None}
        prepare(args.work, specs, model, sample=args.sample, seed=args.seed, sampling=sampling,
                rows_per_shard=args.rows_per_shard)
    except (EvalSpecError, StageError, ValueError) as exc:
        print(f"megascience-eval: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        execute(args.work, executor=args.executor, cache=args.cache, cache_only=args.cache_only,
                progress=args.progress, shards_in_flight=args.shards_in_flight)
    except StageError as exc:
        print(f"megascience-eval: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("megascience-eval: interrupted; answers so far are cached, run the same command to resume",
              file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a backend or stage failed mid-run
        logging.getLogger("megascience_eval").exception("run failed")
        print(f"megascience-eval: run failed: {type(exc).__name__}: {exc}\nanswers so far are cached; "
              f"run the same command again to resume", file=sys.stderr)
        return EXIT_FAILURE
    return cmd_report(argparse.Namespace(work=args.work, published=args.published))


def cmd_report(args) -> int:
    try:
        run = load_run(args.work)
        published = _published_for([run], args.published)
    except (FileNotFoundError, KeyError) as exc:
        print(f"megascience-eval: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(write_outputs(args.work, [run], published))
    return EXIT_OK


def cmd_compare(args) -> int:
    labels = args.label + [w.name for w in args.works[len(args.label):]]
    try:
        runs = [load_run(w, l) for w, l in zip(args.works, labels)]
        published = _published_for(runs, args.published)
    except (FileNotFoundError, KeyError) as exc:
        print(f"megascience-eval: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(write_outputs(args.out, runs, published, stem="compare"))
    return EXIT_OK


def _where(spec) -> str:
    """Where a benchmark's questions come from, with the pinned revision (or why there is none)."""
    src = spec.source
    if spec.withheld:
        return "withheld (gold answers not public)"
    if src.source == "hub":
        pin = src.revision[:12] if src.revision else "UNPINNED: pin a commit to run"
        return f"hub {src.repo}{':' + src.config if src.config else ''}/{src.split}@{pin}"
    if src.source == "package":
        return f"PyPI {src.distribution}"
    return f"file {src.path}"


def cmd_benchmarks(args) -> int:
    from .benchmarks import EvalSpecError, load_eval_registry
    try:
        reg = load_eval_registry(args.registry, data_dir=args.data_dir)
    except EvalSpecError as exc:
        print(f"megascience-eval: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{'entry':30} {'paper':12} {'sub-part':24} {'type':16} {'metric':22} source")
    for s in reg.benchmarks.values():
        metric = s.metric.get("name", "em") + (f" rel_tol={s.metric['rel_tol']:g}" if "rel_tol" in s.metric else "")
        print(f"{s.name:30} {s.paper:12} {s.subpart:24} {s.qtype:16} {metric:22} {_where(s)}")
    for name, members in reg.sets.items():
        print(f"set {name}: {' '.join(members)}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return {"run": cmd_run, "report": cmd_report, "compare": cmd_compare,
            "benchmarks": cmd_benchmarks}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
