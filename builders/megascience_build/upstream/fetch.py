"""Fetch an upstream dataset at a pinned revision and convert its split to parquet files for the pipelines:

    python -m megascience_build.upstream.fetch natural_reasoning --dest sources
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .adapters import SOURCES, source_spec


def resolve_revision(repo: str, revision: str = "main") -> str:
    """The full commit sha of a Hub dataset revision (needs the Hub; done once when fetching sources)."""
    from huggingface_hub import HfApi

    return HfApi().dataset_info(repo, revision=revision).sha


def to_parquet(src: str | Path, dst: str | Path, block_bytes: int = 64 << 20) -> int:
    """Copy one upstream file (JSON lines or parquet) to parquet, streaming, in the upstream row order;
    returns the rows written. Written beside the target and renamed, so a crash leaves no half file."""
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp")
    rows = 0
    if src.suffix == ".parquet":
        batches = pq.ParquetFile(src).iter_batches()
    elif src.suffix in (".jsonl", ".json"):
        try:
            batches = pj.open_json(src, read_options=pj.ReadOptions(block_size=block_bytes))
        except pa.ArrowException as exc:
            raise ValueError(f"{src}: not readable as JSON lines ({exc})") from None
    else:
        raise ValueError(f"{src}: expected a .jsonl or .parquet file")
    writer = None
    try:
        for batch in batches:
            if writer is None:
                writer = pq.ParquetWriter(tmp, batch.schema, compression="zstd")
            writer.write_batch(batch)
            rows += batch.num_rows
    except pa.ArrowException as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{src}: not readable as {src.suffix[1:]} after {rows} rows ({exc})") from None
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError(f"{src}: no rows")
    tmp.replace(dst)
    return rows


def fetch(name: str, dest: str | Path, revision: str | None = None) -> dict:
    """Download a source's upstream files at a revision (resolved to its full sha) from the Hub and write them
    as parquet under dest/<name>/ (SFT/science/x.jsonl -> SFT__science__x.parquet), with source.json naming
    repo, sha, files and rows. Needs the Hub."""
    from huggingface_hub import snapshot_download

    spec = source_spec(name)
    sha = resolve_revision(spec.repo, revision or spec.revision)
    local = Path(snapshot_download(spec.repo, repo_type="dataset", revision=sha, allow_patterns=list(spec.files)))
    files = sorted(p for pattern in spec.files for p in local.glob(pattern) if p.is_file())
    if not files:
        raise FileNotFoundError(f"{spec.repo}@{sha}: no file matches {list(spec.files)}")
    out = Path(dest) / name
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in files:
        # named after the upstream path, so the provenance `file` (and the row ids) point back to it
        target = out / (str(f.relative_to(local).with_suffix("")).replace("/", "__") + ".parquet")
        written.append({"upstream": str(f.relative_to(local)), "file": target.name, "rows": to_parquet(f, target)})
    info = {"repo": spec.repo, "config": spec.config, "split": spec.split, "revision": sha, "files": written}
    (out / "source.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m megascience_build.upstream.fetch",
                                 description="Fetch a MegaScience source dataset from the Hub as parquet.")
    ap.add_argument("source", choices=sorted(SOURCES))
    ap.add_argument("--dest", default="sources", help="folder that gets <source>/*.parquet (default: sources)")
    ap.add_argument("--revision", help="branch, tag or sha (default: the pinned one, else main)")
    args = ap.parse_args(argv)
    info = fetch(args.source, args.dest, args.revision)
    print(json.dumps(info, indent=2))
    print(f"pin it in the pipeline file: adapt_source params {{source: {args.source}, revision: {info['revision']}}}")


if __name__ == "__main__":
    main()
