"""`megascience-build release` publishes a pool's selection signals as a small configuration; a release that
holds the pool and its signals but not the subsets gives every Table 3 subset through the loader, checked
against the counts and id digests the release manifest records."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from release_lib import release_cli, work_args

SUBSETS = ("natural_reasoning_dc_difficulty", "natural_reasoning_dc_length", "natural_reasoning_dc_random")


def test_signals_configuration_and_subsets_derived_from_it(built, tmp_path):
    import megascience_datasets as msd
    from megascience_datasets import derive
    from megascience_datasets.repo_folder import write_repo_folder

    dest = tmp_path / "full"
    args = [a for c in ("natural_reasoning", "natural_reasoning_dc_signals", *SUBSETS) for a in ("--config", c)]
    out = release_cli(*work_args(built["works"]), *args, "--dest", str(dest))
    assert out.returncode == 0, out.stderr
    manifest = json.loads((dest / "manifest.json").read_text())
    sig = manifest["configs"]["natural_reasoning_dc_signals"]
    signals = pq.read_table(dest / sig["shards"][0]["path"])
    assert signals.column_names == list(derive.SIGNAL_COLUMNS)
    assert {m["role"] for m in sig["signals"]["models"]} >= {"policy", "grader", "reference"}
    assert all("revision" in m or "model" in m for m in sig["signals"]["models"])
    for name in SUBSETS:                     # the signals' records are the published subsets' counts and ids
        rows = pq.read_table(dest / manifest["configs"][name]["shards"][0]["path"])
        assert sig["subsets"][name]["rows"] == rows.num_rows == manifest["configs"][name]["rows"]
        assert sig["subsets"][name]["ids_sha256"] == derive.ids_digest(rows.column("id").to_pylist())

    # a release with the pool and the signals only (the pool stands in as natural_reasoning_dc: the fixture
    # pipeline has no decontamination stage, so its subsets were selected from the deduplicated pool)
    pool = [dest / s["path"] for s in manifest["configs"]["natural_reasoning"]["shards"]]
    small = tmp_path / "signals_only"
    write_repo_folder(small, {"natural_reasoning_dc": pool, "natural_reasoning_dc_signals": [signals]},
                      revision={"tag": "s", "sha": None},
                      extra={"natural_reasoning_dc_signals": {"subsets": sig["subsets"], "signals": sig["signals"]}})
    for name in SUBSETS:
        ds = msd.load_dataset(name, source=str(small), split="train", cache_dir=tmp_path / "c", progress=False)
        st = msd.load_dataset(name, source=str(small), split="train", streaming=True, cache_dir=tmp_path / "c",
                              progress=False)
        published = pq.read_table(dest / manifest["configs"][name]["shards"][0]["path"]).column("id").to_pylist()
        assert sorted(ds["id"]) == sorted(published) and [r["id"] for r in st] == list(ds["id"])
        res = msd.resolve_config(name, source=str(small), cache_dir=tmp_path / "c", progress=False)
        assert res.plan.record()["ids_sha256"] == sig["subsets"][name]["ids_sha256"]
