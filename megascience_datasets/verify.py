"""Check a dataset repository folder against its manifest (and optionally a published manifest)."""
from __future__ import annotations

from pathlib import Path

from .catalogue import load_catalogue
from .errors import MegascienceError
from .integrity import Expected, check_digest, check_parquet, hash_file
from .manifest import parse_manifest
from .safety import contained


def verify_folder(folder: str | Path, against: str | Path | None = None, configs: list[str] | None = None) -> list[str]:
    """Every problem found, one line each naming the file and expected vs actual; empty when all is well."""
    folder = Path(folder)
    problems: list[str] = []
    try:
        manifest = parse_manifest((folder / "manifest.json").read_text(encoding="utf-8"), f"{folder}/manifest.json")
    except (OSError, MegascienceError) as e:
        return [f"{folder}: cannot read manifest.json: {e}"]
    cat = load_catalogue()
    names = configs or list(manifest["configs"])
    for name in names:
        if name not in manifest["configs"]:
            problems.append(f"{folder}: configuration {name!r} is not in manifest.json")
            continue
        try:
            schema = cat[name].arrow_schema()
        except MegascienceError as e:
            problems.append(str(e))
            continue
        listed = set()
        for s in manifest["configs"][name]["shards"]:
            listed.add(s["path"])
            try:
                p = contained(folder, s["path"])
                if not p.is_file():
                    problems.append(f"configuration {name!r}: missing file {s['path']}")
                    continue
                exp = Expected(s["path"], s["bytes"], s["sha256"], rows=s["rows"], origin="manifest.json")
                check_digest(hash_file(p), exp, f"configuration {name!r}")
                check_parquet(p, schema, exp, f"configuration {name!r}")
            except MegascienceError as e:
                problems.append(str(e))
        data_dir = folder / "data" / name
        for extra in sorted(data_dir.glob("*")) if data_dir.is_dir() else []:
            rel = extra.relative_to(folder).as_posix()
            if rel not in listed:
                problems.append(f"configuration {name!r}: unexpected file {rel} not in manifest.json")
    if against is not None:
        try:
            ref = parse_manifest(Path(against).read_text(encoding="utf-8"), str(against))
        except (OSError, MegascienceError) as e:
            return problems + [f"{against}: cannot read: {e}"]
        for name in names:
            mine = {s["path"]: s for s in manifest["configs"].get(name, {}).get("shards", [])}
            theirs = {s["path"]: s for s in ref["configs"].get(name, {}).get("shards", [])}
            if name not in ref["configs"]:
                problems.append(f"configuration {name!r}: not in {against}")
                continue
            for path in sorted(set(mine) | set(theirs)):
                a, b = mine.get(path), theirs.get(path)
                if a is None or b is None:
                    problems.append(f"configuration {name!r}: shard {path} only in "
                                    f"{'the folder' if b is None else against}")
                elif (a["sha256"], a["bytes"], a["rows"]) != (b["sha256"], b["bytes"], b["rows"]):
                    problems.append(f"configuration {name!r}: shard {path} differs: folder sha256 {a['sha256']} "
                                    f"({a['rows']} rows), {against} sha256 {b['sha256']} ({b['rows']} rows)")
    return problems
