"""The `megascience` command.

Exit codes: 0 success; 1 integrity or verification failure (size, sha256, schema, rows, lock refusal);
2 usage error (unknown configuration or revision, unsafe name, bad lock file or arguments);
3 data unavailable (offline and not cached, network failure); 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .errors import MegascienceError

EPILOG = ("exit codes: 0 ok, 1 integrity/verification failure, 2 usage error (unknown configuration or revision), "
          "3 data unavailable (offline and not cached, network), 130 interrupted")


def _fmt_rows(n) -> str:
    return f"{n:,}" if n is not None else "?"


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _cached_size(entry, cat) -> str:
    """Parquet bytes of the configuration in the local store (newest cached commit), or '?' if never downloaded."""
    import fnmatch
    from .resolve import pick_location
    from .store import Store, default_root
    try:
        loc, _, _ = pick_location(entry, cat, None, False)
    except MegascienceError:
        return "?"
    store = Store(default_root())
    best = None
    for sha in store.cached_shas(loc):
        rec = store.record(loc, sha)
        files = [r["size"] for p, r in rec.items() if fnmatch.fnmatchcase(p, loc.files)]
        mtime = store.snapshot_dir(loc, sha).stat().st_mtime
        if files and (best is None or mtime > best[0]):
            best = (mtime, sum(files))
    return _human(best[1]) if best else "?"


def cmd_list(args) -> int:
    from .catalogue import load_catalogue
    cat = load_catalogue()
    rows = [("configuration", "group", "rows", "size", "license", "source")]
    for e in cat:
        rows_s = _fmt_rows(e.rows) if e.rows is not None else (f"~{e.paper_rows:,}" if e.paper_rows else "?")
        src = f"{e.source.repo}@{(e.source.revision or e.source.resolve)[:12]}" if e.source.kind == "upstream" \
            else f"release:{cat.release.current_repo() or '$' + cat.release.repo_env}"
        size = _cached_size(e, cat)
        rows.append((e.name, e.group, rows_s, size, e.license, src))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\n{len(cat.entries)} configurations; '~' = size reported by the paper (exact counts come with each "
          f"release's manifest); size: parquet bytes cached on this machine, '?' before a download.")
    return 0


def cmd_info(args) -> int:
    from .catalogue import load_catalogue
    e = load_catalogue()[args.config]
    out = {"name": e.name, "group": e.group, "paper": e.table, "description": e.description,
           "features": dict(e.features), "rows": e.rows, "paper_rows": e.paper_rows, "license": e.license,
           "source": {k: v for k, v in vars(e.source).items() if v is not None}}
    if e.derived:
        out["derived"] = {"parent": e.derived.parent, "rule": e.derived.rule,
                          "parameters": dict(e.derived.parameters), "seed": e.derived.seed}
    print(json.dumps(out, indent=2))
    return 0


def _resolve_all(args, streaming: bool = False):
    from .api import resolve_config
    derive = {"n": args.n} if getattr(args, "n", None) is not None else None
    return [resolve_config(name, args.revision, source=args.source, lock=getattr(args, "lock", None),
                           streaming=streaming, cache_dir=args.cache_dir, sample=args.sample,
                           verify=getattr(args, "verify", False), parent_revision=getattr(args, "parent_revision", None),
                           parent_source=getattr(args, "parent_source", None), derive=derive)
            for name in args.configs]


def cmd_download(args) -> int:
    from .lockfile import Lock
    from .repo_folder import write_repo_folder
    resolved = _resolve_all(args)
    shas = {r.sha for r in resolved}
    revision = {"requested": args.revision, "sha": shas.pop() if len(shas) == 1 else None,
                "sources": {r.entry.name: {"source": r.source_label, "revision": r.revision, "sha": r.sha}
                            for r in resolved}}
    if len(resolved) == 1 and resolved[0].location.kind == "hub":
        revision["url"] = f"https://huggingface.co/datasets/{resolved[0].location.target}/tree/{resolved[0].sha}"
    import tempfile
    with tempfile.TemporaryDirectory(prefix="megascience-derive-") as tmp:
        # derived configurations are written from their parent's rows; the manifest keeps the derivation record
        inputs = {r.entry.name: (r.materialize(Path(tmp) / r.entry.name) if hasattr(r, "plan") else r.data_files)
                  for r in resolved}
        extra = {r.entry.name: {"derivation": r.plan.record()} for r in resolved if hasattr(r, "plan")}
        manifest = write_repo_folder(args.dir, inputs, revision=revision, overwrite=args.overwrite, extra=extra)
    lock = Lock({r.entry.name: r.locked() for r in resolved})
    lock_path = Path(args.lock_out) if args.lock_out else Path(args.dir) / "megascience.lock.json"
    lock.save(lock_path)
    for r in resolved:
        print(f"{r.entry.name}: {manifest['configs'][r.entry.name]['rows']:,} rows at {r.sha} -> {args.dir}")
    print(f"lock: {lock_path}")
    return 0


def cmd_lock(args) -> int:
    from .lockfile import Lock
    from .lockfile import read_lock
    lock = read_lock(args.output) if args.update and Path(args.output).exists() else Lock()
    for r in _resolve_all(args):
        lock.configs[r.entry.name] = r.locked()
        print(f"{r.entry.name}: {r.source_label} {r.sha} ({len(r.files)} shard(s), {_fmt_rows(r.rows)} rows)")
    lock.save(args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_verify(args) -> int:
    if args.dir:
        from .verify import verify_folder
        problems = verify_folder(args.dir, against=args.against, configs=args.configs or None)
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        if not problems:
            print(f"OK {args.dir}")
        return 1 if problems else 0
    from .api import resolve_config
    from .lockfile import read_lock
    if not args.lock:
        raise SystemExit("megascience verify: give --dir DIR or --lock FILE")
    lock = read_lock(args.lock)
    for name in args.configs or sorted(lock.configs):
        kind, _, where = lock.configs[name].source.partition(":") if name in lock.configs else ("", "", "")
        # the lock names its source; read from there unless --source/--sample says otherwise
        source = args.source or (where if kind in ("hub", "path") else None)
        r = resolve_config(name, source=source, lock=lock, cache_dir=args.cache_dir,
                           sample=args.sample or kind == "sample", verify=True)
        print(f"OK {r.entry.name}: {r.sha}, {len(r.files)} shard(s) re-hashed")
    return 0


def cmd_cite(args) -> int:
    from .cards import dataset_bibtex
    from .catalogue import load_catalogue
    from .api import resolve_config
    from .errors import UnavailableError
    cat = load_catalogue()
    try:
        res = resolve_config(args.config, args.revision, source=args.source, streaming=True,
                             cache_dir=args.cache_dir, sample=args.sample, progress=False)
    except UnavailableError as exc:
        # offline: a full commit sha (given, or the catalogue's pin) can still be cited, unverified
        entry = cat[args.config]
        sha = args.revision or entry.source.revision
        if args.source or entry.source.repo is None or not re.fullmatch(r"[0-9a-f]{40}", sha or ""):
            raise
        print(f"note: {exc}; citing the pinned commit {sha} without checking it on the Hub", file=sys.stderr)
        print(cat.citations["paper"].strip() + "\n")
        print(dataset_bibtex(entry.name, sha, f"https://huggingface.co/datasets/{entry.source.repo}/tree/{sha}"))
        return 0
    loc = res.location
    url = (f"https://huggingface.co/datasets/{loc.target}/tree/{res.sha}" if loc.kind == "hub" else loc.target)
    print(cat.citations["paper"].strip())
    print()
    tag = res.revision if loc.kind == "hub" and res.revision != res.sha else None
    print(dataset_bibtex(res.entry.name, res.sha, url, tag=tag))
    return 0


def cmd_card(args) -> int:
    from .cards import render_config_card, render_family_card
    sys.stdout.write(render_family_card(args.family) if args.family else render_config_card(args.config))
    return 0


def _data_args(p, many=True, revision=True):
    if many:
        p.add_argument("configs", nargs="+", metavar="CONFIG", help="configuration name(s) (see `megascience list`)")
    if revision:
        p.add_argument("--revision", default=None, help="tag, branch or full sha (default: the catalogue's pin)")
    p.add_argument("--source", default=None, help="Hub repo id, local repository folder or fsspec URL overriding "
                                                  "the catalogue (release configurations: $MEGASCIENCE_RELEASE)")
    p.add_argument("--cache-dir", default=None, help="cache directory (default: the datasets cache)")
    p.add_argument("--sample", action="store_true", help="use the small embedded sample instead of real data")
    if many:
        p.add_argument("--parent-revision", default=None, help="derived configurations: revision of the parent")
        p.add_argument("--parent-source", default=None, help="derived configurations: where the parent lives")
        p.add_argument("--n", type=int, default=None, help="derived random selections: rows to select "
                                                           "(default: the catalogue's, e.g. 297,600)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="megascience", description="Pinned, verified MegaScience datasets "
                                 "(arXiv 2507.16812).", epilog=EPILOG)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="table of every configuration", epilog=EPILOG)
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("info", help="catalogue entry of one configuration (JSON)", epilog=EPILOG)
    p.add_argument("config")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("download", help="download, verify and write a dataset repository folder plus a lock",
                       epilog=EPILOG)
    _data_args(p)
    p.add_argument("--dir", required=True, help="output folder (README.md, data/<config>/, manifest.json)")
    p.add_argument("--lock-out", default=None, help="lock file to write (default: DIR/megascience.lock.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty DIR")
    p.set_defaults(func=cmd_download)
    p = sub.add_parser("lock", help="resolve, download and verify; write a lock file", epilog=EPILOG)
    _data_args(p)
    p.add_argument("-o", "--output", default="megascience.lock.json", help="lock file (default: %(default)s)")
    p.add_argument("--update", action="store_true", help="add to an existing lock file instead of replacing it")
    p.set_defaults(func=cmd_lock)
    p = sub.add_parser("verify", help="re-hash locked data, or check a repository folder against its manifest",
                       epilog=EPILOG)
    p.add_argument("configs", nargs="*", metavar="CONFIG", help="limit to these configurations")
    p.add_argument("--lock", default=None, help="lock file: re-hash every locked shard in the cache")
    p.add_argument("--dir", default=None, help="repository folder: check shards against its manifest.json")
    p.add_argument("--against", default=None, help="with --dir: a published manifest.json the folder must match "
                                                   "shard by shard (e.g. a rebuild against a release)")
    _data_args(p, many=False, revision=False)
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("cite", help="BibTeX of the paper and of the configuration at a resolved revision",
                       epilog=EPILOG)
    p.add_argument("config")
    _data_args(p, many=False)
    p.set_defaults(func=cmd_cite)
    p = sub.add_parser("card", help="print the dataset card of a configuration or family", epilog=EPILOG)
    p.add_argument("config", nargs="?")
    p.add_argument("--family", choices=["released", "selection", "pipeline", "decontamination"])
    p.set_defaults(func=cmd_card)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command == "card" and not (args.config or args.family):
        ap.error("card: give CONFIG or --family")
    try:
        return args.func(args)
    except MegascienceError as e:
        print(f"megascience {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
