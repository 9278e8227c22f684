"""The demo's last steps: a built `textbook` output becomes ./megascience/ and loads with plain `datasets`."""
from __future__ import annotations

import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from megascience_build.demo import show, write_folder
from megascience_build.engine import records


def test_built_output_becomes_a_loadable_repository_folder(tmp_path, capsys):
    rows = [("What is 2 + 2?", "2 + 2 = \\boxed{4}", "math", "4"), ("Name a noble gas.", "Neon.", "chemistry", "Neon")]
    ids = [records.content_id("t", i) for i in range(len(rows))]
    provs = [records.new_provenance({"kind": "book", "file": "b.md", "chunk_id": "c", "pages": [1, 2]}) for _ in rows]
    table = pa.table({"id": ids, "question": [r[0] for r in rows], "answer": [r[1] for r in rows],
                      "subject": [r[2] for r in rows], "reference_answer": [r[3] for r in rows], "provenance": provs})
    shard = tmp_path / "part-00000.parquet"
    pq.write_table(table, shard)
    manifest = {"output_dir": str(tmp_path), "outputs": [{"file": shard.name}], "pipeline": {"sha256": "x"},
                "stages": [{"label": "finalize", "rows_in": 2, "rows_out": 2, "dropped": {}}]}
    work, dest = tmp_path / "work", tmp_path / "megascience"
    work.mkdir()
    folder = write_folder(manifest, dest, work)
    assert folder["configs"]["textbook"]["rows"] == 2
    assert json.loads((dest / "manifest.json").read_text())["configs"]["textbook"]["rows"] == 2
    show(dest, work)
    out = capsys.readouterr().out
    assert "2 rows" in out and "What is 2 + 2?" in out and "pages [1, 2]" in out
    ds = datasets.load_dataset(str(dest), "textbook", split="train", cache_dir=str(tmp_path / "c"))
    assert ds["id"] == ids and ds.column_names == table.column_names
