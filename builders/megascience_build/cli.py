"""`megascience-build`: run a pipeline into a work directory, show its status, render its report, release.

Exit codes: 0 success; 2 configuration or input error (found before any work); 1 run failure (including a
locked work directory and a --cache-only miss); 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .engine.stage import StageError

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def _model_override(text: str) -> tuple[str, str]:
    role, sep, model = text.partition("=")
    if not sep or not role or not model:
        raise argparse.ArgumentTypeError(f"expected ROLE=MODEL_ID[@REVISION], got {text!r}")
    return role, model


def _rate(text: str) -> tuple[str, float]:
    role, sep, value = text.partition("=")
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not sep or not role or rate <= 0:
        raise argparse.ArgumentTypeError(f"expected ROLE=TOKENS_PER_S with a positive number, got {text!r}")
    return role, rate


class _StagesHelp(argparse.Action):
    """`stages --help`: the usage, then every built-in stage's prompts and parameters."""

    def __call__(self, parser, namespace, values, option_string=None):
        from .stages.catalogue import builtin_stages, stage_help
        parser.print_help()
        print("\nstages:\n\n" + "\n".join(stage_help(cls) for cls in builtin_stages()), end="")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="megascience-build", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline file into a work directory (resumes where it stopped)",
                         description="Run a pipeline file into a work directory. Finished shards are kept; "
                                     "model answers come from the request cache when present.")
    run.add_argument("pipeline", type=Path, help="pipeline configuration file (YAML)")
    run.add_argument("--work", type=Path, required=True, help="work directory (created if missing)")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local processes (default) or a Ray cluster (RAY_ADDRESS or a local instance)")
    run.add_argument("--backend", help="use this backend for every generation model role")
    run.add_argument("--model", action="append", default=[], type=_model_override, metavar="ROLE=ID[@REV]",
                     help="replace the model of one role (repeatable)")
    run.add_argument("--limit", type=int, help="use only the first N input rows (trial run)")
    run.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                     help="parallel processes for CPU stages (local executor; default: %(default)s)")
    run.add_argument("--shards-in-flight", type=int, default=8,  # RunOptions.shards_in_flight
                     help="shards of a model stage run at once, feeding one request window of its backend "
                          "(local executor; default: %(default)s)")
    run.add_argument("--cache", help="request cache file (default: WORK/cache.sqlite); share it between runs")
    run.add_argument("--cache-only", action="store_true",
                     help="replay from the request cache without loading any model; a miss is an error")
    run.add_argument("--output", help="where to write the final shards (any fsspec path; default WORK/output)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    status = sub.add_parser("status", help="which stages and shards of a work directory are done",
                            description="Show, per stage, the shards that are finished and their rows.")
    status.add_argument("--work", type=Path, required=True)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")

    report = sub.add_parser("report", help="rewrite report.md and report.png from the manifest",
                            description="Render report.md and report.png from WORK/manifest.json and print the markdown.")
    report.add_argument("--work", type=Path, required=True)

    pl = sub.add_parser("plan", help="requests, tokens and GPU-hours at full size, scaled from a trial run",
                        description="Scale a finished (trial) run's per-stage requests and tokens to --rows input "
                                    "rows and convert generated tokens into GPU-hours at measured rates.")
    pl.add_argument("--work", type=Path, required=True, help="work directory of the trial run")
    pl.add_argument("--rows", type=int, required=True, help="input rows of the full run")
    pl.add_argument("--rate", action="append", default=[], type=_rate, metavar="ROLE=TOKENS_PER_S",
                    help="generated tokens/s of one replica for a model role ('*' for all; repeatable)")
    pl.add_argument("--json", action="store_true", help="print JSON instead of a table")

    rel = sub.add_parser("release", help="assemble the dataset repository folder from finished work directories; "
                                         "optionally commit it to git and publish it to a Hub repository",
                         description="Assemble the dataset repository folder (README YAML, data/<config>/*.parquet, "
                                     "manifest.json, cards/) from finished work directories; with --git make it a "
                                     "git repository (deterministic commit, tag); with --publish upload it to a Hub "
                                     "dataset repository and tag the commit. RELEASE.json records the commit sha.")
    rel.add_argument("--work", action="append", default=[], metavar="NAME=WORKDIR",
                     help="a finished pipeline's work directory; NAME is the pipeline (textbook, "
                          "natural_reasoning, megascience, ...). Repeatable")
    rel.add_argument("--from-config", type=Path, metavar="FILE",
                     help="release.yaml: works {name: dir}, dest, configs, complete, default, tag, message, git, "
                          "publish {repo, endpoint, token_env}; command-line options override it")
    rel.add_argument("--dest", type=Path, help="the folder to write (required here or in the file)")
    rel.add_argument("--config", dest="configs", action="append", metavar="CONFIG",
                     help="release only these configurations (repeatable; default: every one the work dirs give)")
    rel.add_argument("--complete", action="store_true", default=None,
                     help="require every catalogue configuration (the full project release)")
    rel.add_argument("--default", help="the default configuration (default: textbook, else megascience, else first)")
    rel.add_argument("--tag", help="release tag, e.g. v1.0 (git tag and Hub tag)")
    rel.add_argument("--message", help="commit message")
    rel.add_argument("--overwrite", action="store_true", help="replace the content of a non-empty --dest (.git kept)")
    rel.add_argument("--git", action="store_true", default=None,
                     help="commit the folder to a git repository at --dest (fixed author/date) and tag it")
    rel.add_argument("--publish", metavar="REPO_ID", help="upload to this Hub dataset repository and tag the commit")
    rel.add_argument("--endpoint", help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    rel.add_argument("--token-env", metavar="VAR", help="environment variable holding the Hub token")
    st = sub.add_parser("stages", help="the stages a pipeline can name: kind, prompts, parameters", add_help=False,
                        description="With no NAME: one line per stage. With NAMEs: each stage's prompt slots "
                                    "(default files) and parameters (type, default, help), as a pipeline file's "
                                    "`params:` takes them. --markdown: the README's stage table.")
    st.add_argument("-h", "--help", action=_StagesHelp, nargs=0, help="show this help and every stage's parameters")
    st.add_argument("names", nargs="*", metavar="NAME", help="stage names (default: every stage)")
    st.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="also list the `STAGES` of this plugin module (repeatable), e.g. megascience_eval.stages")
    st.add_argument("--markdown", action="store_true", help="print the README's stage table")
    return parser


def cmd_stages(args) -> int:
    from .stages.catalogue import builtin_stages, find_stage, markdown_table, plugin_stages, stage_help, stage_overview
    try:
        classes = [*builtin_stages(), *plugin_stages(args.plugin).values()]
        picked = [find_stage(name, args.plugin) for name in args.names]
    except (StageError, ImportError) as exc:
        print(f"megascience-build: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.markdown:
        print(markdown_table(picked or classes), end="")
    elif picked:
        print("\n".join(stage_help(cls) for cls in picked), end="")
    else:
        print(stage_overview(classes), end="")
    return EXIT_OK


def cmd_run(args) -> int:
    from .engine.cache import CacheMissError
    from .engine.orchestration import RunOptions, run_pipeline
    from .engine.pipeline_config import load_pipeline
    from .engine.workdir import WorkDirLocked

    try:
        config = load_pipeline(args.pipeline, backend=args.backend, models=dict(args.model), limit=args.limit)
    except StageError as exc:
        print(f"megascience-build: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for flag, value in (("--workers", args.workers), ("--shards-in-flight", args.shards_in_flight)):
        if value < 1:
            print(f"megascience-build: configuration error: {flag} must be at least 1", file=sys.stderr)
            return EXIT_CONFIG
    options = RunOptions(workers=args.workers, shards_in_flight=args.shards_in_flight,
                         cache_path=args.cache, cache_only=args.cache_only,
                         progress=not args.no_progress, output=args.output, executor=args.executor)
    try:
        manifest = run_pipeline(config, args.work, options)
    except StageError as exc:
        print(f"megascience-build: input error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (WorkDirLocked, CacheMissError) as exc:
        print(f"megascience-build: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("megascience-build: interrupted; finished shards and cached answers are kept, "
              "run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # a stage or backend failed mid-run: finished shards stay, a rerun resumes
        logging.getLogger("megascience_build").exception("run failed")
        print(f"megascience-build: run failed: {type(exc).__name__}: {exc}\n"
              f"finished shards and cached answers are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_FAILURE
    print(f"done: {manifest['output_rows']} rows in {len(manifest['outputs'])} shard(s); "
          f"manifest {Path(args.work) / 'manifest.json'}, report {Path(args.work) / 'report.md'}")
    return EXIT_OK


def cmd_status(args) -> int:
    from .engine.status import work_status
    try:
        status = work_status(args.work)
    except FileNotFoundError as exc:
        print(f"megascience-build: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_OK
    print(f"work directory {status['work']} (pipeline {status['pipeline']}; input shards {status['input_shards']})")
    print(f"{'stage':24} {'state':10} {'shards done':>12} {'rows out':>10}")
    for st in status["stages"]:
        print(f"{st['label']:24} {st['state']:10} {st['shards_done']:>12} {st['rows_out']:>10}")
    if status["locked_by"]:
        print(f"a run is in progress (pid {status['locked_by']})")
    return EXIT_OK


def cmd_report(args) -> int:
    from .engine.manifest import read_manifest
    from .engine.report import render_markdown, write_report
    try:
        manifest = read_manifest(args.work)
    except FileNotFoundError as exc:
        print(f"megascience-build: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    write_report(manifest, Path(args.work))
    print(render_markdown(manifest))
    return EXIT_OK


def cmd_plan(args) -> int:
    from .engine.capacity import plan, render
    from .engine.manifest import read_manifest
    try:
        manifest = read_manifest(args.work)
        result = plan(manifest, args.rows, dict(args.rate))
    except (FileNotFoundError, ValueError) as exc:
        print(f"megascience-build: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(result, indent=2) if args.json else render(result), end="" if not args.json else "\n")
    return EXIT_OK


def cmd_release(args) -> int:
    from .release import ReleaseError, ReleaseOptions, load_release_file, parse_work, release

    try:
        doc = load_release_file(args.from_config) if args.from_config else {}
        works = dict(doc.get("works", {}))
        works.update(parse_work(w) for w in args.work)
        picked = {k: getattr(args, k) for k in ("dest", "configs", "complete", "default", "tag", "message", "git",
                                                 "publish", "endpoint", "token_env") if getattr(args, k) is not None}
        merged = {**{k: v for k, v in doc.items() if k != "works"}, **picked}
        if merged.get("dest") is None:
            raise ReleaseError("--dest is required (or `dest:` in the --from-config file)")
        opts = ReleaseOptions(works=works, overwrite=args.overwrite, **merged)
        record = release(opts)
    except ReleaseError as exc:
        print(f"megascience-build: release error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # the Hub or git failed after the folder was written
        logging.getLogger("megascience_build").exception("release failed")
        print(f"megascience-build: release failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    rows = sum(c["rows"] for c in record["configs"].values())
    print(f"released {len(record['configs'])} configuration(s), {rows} rows, into {opts.dest}")
    if record.get("git"):
        print(f"git commit {record['git']['sha']}" + (f" (tag {record['tag']})" if record["tag"] else ""))
    if record.get("hub"):
        print(f"published {record['hub']['repo']} commit {record['hub']['sha']} (tag {record['tag']})")
    if record["sha"]:
        print(record["sha"])
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return {"run": cmd_run, "status": cmd_status, "report": cmd_report, "plan": cmd_plan,
            "release": cmd_release, "stages": cmd_stages}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
