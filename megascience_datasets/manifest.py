"""manifest.json of a dataset repository folder: per configuration its shards (rows, bytes, sha256) and rule.

    {"format_version": 1, "dataset": "megascience",
     "revision": {"tag": "v1.0", "sha": "<40 hex or null>", ...},
     "configs": {"<config>": {"rows": N, "bytes": B, "parent": ..., "rule": ..., "parameters": {...},
                              "seed": ..., "shards": [{"path": "data/<config>/train-00000-of-00001.parquet",
                                                       "rows": n, "bytes": b, "sha256": "..."}], ...}}}
"""
from __future__ import annotations

import json
import re

from .errors import IntegrityError
from .safety import check_config_name, check_relpath

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_manifest(text: str, origin: str) -> dict:
    """Parse and validate; every name and path is checked before anything uses it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise IntegrityError(f"{origin}: not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format_version") != 1 or not isinstance(data.get("configs"), dict):
        raise IntegrityError(f"{origin}: expected an object with format_version 1 and `configs`")
    for name, cfg in data["configs"].items():
        check_config_name(name)
        shards = cfg.get("shards") if isinstance(cfg, dict) else None
        if not isinstance(shards, list):
            raise IntegrityError(f"{origin}: configuration {name!r} has no `shards` list")
        for s in shards:
            if not isinstance(s, dict):
                raise IntegrityError(f"{origin}: configuration {name!r}: shard entry {s!r} is not an object")
            check_relpath(s.get("path"), "manifest shard")
            if not s["path"].startswith(f"data/{name}/"):
                raise IntegrityError(f"{origin}: configuration {name!r}: shard {s['path']!r} is not under data/{name}/")
            for k in ("rows", "bytes"):
                if not isinstance(s.get(k), int) or isinstance(s.get(k), bool) or s[k] < 0:
                    raise IntegrityError(f"{origin}: shard {s['path']}: `{k}` is {s.get(k)!r}, expected an integer")
            if not isinstance(s.get("sha256"), str) or not SHA256.match(s["sha256"]):
                raise IntegrityError(f"{origin}: shard {s['path']}: `sha256` is {s.get('sha256')!r}, expected 64 hex digits")
    return data
