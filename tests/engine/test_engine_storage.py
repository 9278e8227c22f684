"""Deterministic parquet bytes, atomic writes, and fsspec URLs for inputs and outputs."""
from __future__ import annotations

from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from engine_testlib import make_rows, write_pipeline
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.manifest import output_paths
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.engine.storage import parquet_bytes, read_parquet, write_atomic, write_parquet


def test_parquet_bytes_are_deterministic_and_ignore_schema_metadata():
    table = make_rows()
    assert parquet_bytes(table) == parquet_bytes(make_rows())
    assert parquet_bytes(table.replace_schema_metadata({"pandas": "{}", "x": "1"})) == parquet_bytes(table)
    assert parquet_bytes(pa.Table.from_batches(table.to_batches(max_chunksize=3))) == parquet_bytes(table)
    assert pq.read_table(pa.BufferReader(parquet_bytes(table))).equals(table)


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    path = tmp_path / "d" / "part-00000.parquet"
    info = write_parquet(path, make_rows())
    assert info["rows"] == 24 and info["bytes"] == path.stat().st_size
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and [p.name for p in path.parent.iterdir()] == ["part-00000.parquet"]


def test_inputs_and_outputs_on_fsspec_urls(tmp_path):
    fs = fsspec.filesystem("memory")
    rows = make_rows()
    with fs.open("/engine-test/in/a.parquet", "wb") as fh:
        fh.write(parquet_bytes(rows.slice(0, 12)))
    with fs.open("/engine-test/in/b.parquet", "wb") as fh:
        fh.write(parquet_bytes(rows.slice(12)))
    pipeline = write_pipeline(tmp_path / "p")
    doc = yaml.safe_load(pipeline.read_text())
    doc["input"]["parquet"] = ["memory://engine-test/in/*.parquet"]
    doc["output"] = "memory://engine-test/out"
    pipeline.write_text(yaml.safe_dump(doc))
    m = run_local(load_pipeline(pipeline), tmp_path / "work", RunOptions(progress=False))
    paths = output_paths(m, tmp_path / "work")
    assert m["output_dir"] == "memory://engine-test/out"
    assert paths == [f"memory://engine-test/out/part-0000{i}.parquet" for i in range(4)]
    local = run_local(load_pipeline(write_pipeline(tmp_path / "q")), tmp_path / "work2", RunOptions(progress=False))
    assert [o["sha256"] for o in m["outputs"]] == [o["sha256"] for o in local["outputs"]]
    assert sum(read_parquet(p).num_rows for p in paths) == 19


def test_outputs_get_ordinary_permissions_not_mkstemps_0600(tmp_path):
    import os
    import stat
    old = os.umask(0o022)
    try:
        from megascience_build.engine import storage
        mode = 0o666 & ~0o022
        monkey = storage.FILE_MODE, storage.DIR_MODE
        storage.FILE_MODE, storage.DIR_MODE = mode, 0o755     # as computed at import under this umask
        try:
            m = run_local(load_pipeline(write_pipeline(tmp_path / "p")), tmp_path / "work", RunOptions(progress=False))
            storage.publish_dir(tmp_path / "artifact", {"a.bin": b"x"})
        finally:
            storage.FILE_MODE, storage.DIR_MODE = monkey
    finally:
        os.umask(old)
    files = [*map(Path, output_paths(m, tmp_path / "work")), tmp_path / "work" / "manifest.json",
             tmp_path / "work" / "report.md", tmp_path / "artifact" / "a.bin"]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(mode)}
    assert oct(stat.S_IMODE((tmp_path / "artifact").stat().st_mode)) == oct(0o755)
