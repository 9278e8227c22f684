"""The work directory: its paths and record names (one place builds them), its done checks, its errors, and
the layout a finished local run leaves (release code and existing work directories read it)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from megascience_build.engine.executor_local import run_local
from megascience_build.engine.manifest import read_manifest
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.engine.status import work_status
from megascience_build.engine.storage import sha256_bytes
from megascience_build.engine.workdir import MissingRecord, WorkDir, WorkDirError


def test_paths_and_record_names(tmp_path):
    wd = WorkDir(tmp_path / "w")
    root = (tmp_path / "w").resolve()
    assert WorkDir.stage_dirname(3, "dedup") == "03_dedup" and WorkDir.stage_relpath(3, "dedup") == "stages/03_dedup"
    assert wd.stage_path(3, "dedup") == root / "stages" / "03_dedup"
    assert wd.stage_part(3, "dedup", 7) == root / "stages" / "03_dedup" / "part-00007.parquet"
    assert wd.input_part(0) == root / "input" / "part-00000.parquet"
    assert (wd.plan_path, wd.manifest_path, wd.cache_path, wd.lock_path) == \
        (root / "plan.json", root / "manifest.json", root / "cache.sqlite", root / ".lock")
    assert (wd.report_path, wd.report_png_path) == (root / "report.md", root / "report.png")
    assert wd.stage_done_path(1, "a") == root / "stages" / "01_a" / "_SUCCESS.json"
    assert wd.global_record_path(1, "a") == root / "stages" / "01_a" / "_stage.json"
    part = wd.stage_part(0, "a", 2)
    assert WorkDir.sidecar_of(part).name == WorkDir.sidecar_name(2) == "part-00002.json"
    assert WorkDir.part_of(WorkDir.sidecar_of(part)) == part
    assert wd.output_target(None, None) == str(root / "output") and wd.output_target(None, "s3://b/x") == "s3://b/x"
    assert wd.output_target("/o", "s3://b/x") == "/o"
    assert wd.output_part("s3://b/x/", 1) == "s3://b/x/part-00001.parquet"
    assert wd.output_part(str(root / "output"), 1) == str(root / "output" / "part-00001.parquet")


def test_done_checks_of_map_and_global_stages(tmp_path):
    wd = WorkDir(tmp_path / "w")
    part = wd.stage_part(0, "a", 0)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"shard bytes")
    assert wd.done_sidecar(part, "fp") is None                           # no sidecar yet
    meta = {"fingerprint": "fp", "output": {"file": "stages/00_a/part-00000.parquet", "rows": 3,
                                            "sha256": sha256_bytes(b"shard bytes")}}
    wd.write_sidecar(part, meta)
    assert wd.done_sidecar(part, "fp") == meta and wd.done_sidecar(part, "other") is None
    assert wd.finished_sidecars(0, "a") == [meta]
    part.write_bytes(b"damaged")
    assert wd.done_sidecar(part, "fp") is None                           # sha256 no longer matches
    WorkDir.sidecar_of(part).write_text("{not json")
    assert wd.finished_sidecars(0, "a") == []                            # status skips an unreadable sidecar

    out = wd.stage_part(1, "g", 0)
    out.parent.mkdir(parents=True)
    out.write_bytes(b"global")
    record = {"fingerprint": "fp", "outputs": [{"file": "stages/01_g/part-00000.parquet", "rows": 2,
                                                "sha256": sha256_bytes(b"global")}], "output": {"rows": 2}}
    assert wd.global_record(1, "g") is None and wd.done_global(1, "g", "fp") is None
    wd.write_global_record(1, "g", record)
    assert wd.global_record(1, "g") == record and wd.done_global(1, "g", "fp") == record
    assert wd.done_global(1, "g", "other") is None
    assert wd.global_outputs(1, "g", record) == [{**record["outputs"][0], "path": str(out)}]
    out.write_bytes(b"changed")
    assert wd.done_global(1, "g", "fp") is None and wd.global_record(1, "g") == record

    assert not wd.stage_done(1, "g")
    wd.mark_stage_done(1, "g", {"stage": "g", "shards": 1, "rows_out": 2})
    assert wd.stage_done(1, "g")
    wd.clear_stage_done(1, "g")
    wd.clear_stage_done(1, "g")                                          # clearing twice is fine
    assert not wd.stage_done(1, "g")


def test_prune_keeps_the_first_shards_and_their_sidecars(tmp_path):
    wd = WorkDir(tmp_path / "w")
    stage = wd.stage_path(0, "a")
    stage.mkdir(parents=True)
    for i in range(3):
        wd.stage_part(0, "a", i).write_bytes(b"x")
        wd.sidecar_of(wd.stage_part(0, "a", i)).write_text("{}")
    (stage / "_SUCCESS.json").write_text("{}")
    wd.prune_stage(0, "a", 2)
    assert sorted(p.name for p in stage.iterdir()) == ["_SUCCESS.json", "part-00000.json", "part-00000.parquet",
                                                      "part-00001.json", "part-00001.parquet"]
    assert wd.stage_parts(0, "a") == [wd.stage_part(0, "a", 0), wd.stage_part(0, "a", 1)]
    wd.prune(stage, 1)                                                   # without sidecars: only parts are kept
    assert sorted(p.name for p in stage.iterdir()) == ["_SUCCESS.json", "part-00000.parquet"]


def test_errors_name_the_file(tmp_path):
    wd = WorkDir(tmp_path / "w")
    with pytest.raises(MissingRecord) as err:
        wd.read_manifest()
    assert str(wd.manifest_path) in str(err.value) and "manifest" in str(err.value)
    assert isinstance(err.value, WorkDirError) and isinstance(err.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError, match="plan.json: missing .*has a run started"):
        wd.read_plan()
    with pytest.raises(FileNotFoundError, match="plan.json"):
        work_status(tmp_path / "w")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        read_manifest(tmp_path / "w")
    wd.root.mkdir(parents=True)
    wd.manifest_path.write_text("{truncated")
    with pytest.raises(WorkDirError) as err:
        wd.read_manifest()
    assert str(wd.manifest_path) in str(err.value) and "not valid JSON" in str(err.value)
    assert not isinstance(err.value, FileNotFoundError)


def parts(folder: str, n: int) -> list[str]:
    return [f"{folder}/part-{i:05d}.parquet" for i in range(n)]


def sidecars(folder: str, n: int) -> list[str]:
    return [f"{folder}/part-{i:05d}.json" for i in range(n)]


def test_a_local_run_leaves_the_documented_layout(pipeline, tmp_path):
    work = tmp_path / "work"
    run_local(load_pipeline(pipeline), work, RunOptions(progress=False))
    files = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    want = [".lock", "cache.sqlite", *parts("input", 5), "manifest.json", *parts("output", 4), "plan.json",
            "report.md", "report.png",
            *sidecars("stages/00_tag", 5), *parts("stages/00_tag", 5), "stages/00_tag/_SUCCESS.json",
            *sidecars("stages/01_answer", 5), *parts("stages/01_answer", 5), "stages/01_answer/_SUCCESS.json",
            "stages/02_dedup/_SUCCESS.json", "stages/02_dedup/_stage.json", *parts("stages/02_dedup", 4),
            *sidecars("stages/03_upper", 4), *parts("stages/03_upper", 4), "stages/03_upper/_SUCCESS.json"]
    assert [f for f in files if not f.startswith("cache.sqlite-")] == sorted(want)
    wd = WorkDir(work)
    assert wd.stage_parts(3, "upper") == [work.resolve() / p for p in parts("stages/03_upper", 4)]
    assert wd.input_parts() == [work.resolve() / p for p in parts("input", 5)]
    assert json.loads(wd.stage_done_path(2, "dedup").read_text()) == {"stage": "dedup", "shards": 1, "rows_out": 19}
    assert read_manifest(work) == wd.read_manifest()
    # the output shards are the last stage's files, byte for byte
    assert [p.read_bytes() for p in sorted((work / "output").glob("*.parquet"))] == \
        [p.read_bytes() for p in wd.stage_parts(3, "upper")]


def test_status_reads_a_partial_run(pipeline, tmp_path):
    work = tmp_path / "work"
    run_local(load_pipeline(pipeline), work, RunOptions(progress=False))
    wd = WorkDir(work)
    wd.clear_stage_done(1, "answer")
    wd.sidecar_of(wd.stage_part(1, "answer", 4)).unlink()
    wd.clear_stage_done(2, "dedup")
    wd.global_record_path(2, "dedup").unlink()
    st = {s["label"]: s for s in work_status(work)["stages"]}
    assert (st["answer"]["state"], st["answer"]["shards_done"]) == ("partial", 4)
    assert (st["dedup"]["state"], st["dedup"]["shards_done"], st["dedup"]["rows_out"]) == ("pending", 0, 0)
    assert st["tag"]["state"] == st["upper"]["state"] == "done"
    assert work_status(work)["executor"] == "local"


def test_plan_names_every_stage_folder(pipeline, tmp_path):
    work = tmp_path / "work"
    run_local(load_pipeline(pipeline), work, RunOptions(progress=False))
    plan = WorkDir(work).read_plan()
    assert plan["executor"] == "local" and plan["input_shards"] == 5 and plan["name"] == "engine-test"
    assert [(s["label"], s["kind"], s["dir"], s["models"]) for s in plan["stages"]] == [
        ("tag", "map", "stages/00_tag", []), ("answer", "map", "stages/01_answer", ["gen"]),
        ("dedup", "global", "stages/02_dedup", []), ("upper", "map", "stages/03_upper", [])]
    for i, s in enumerate(plan["stages"]):
        assert Path(work, s["dir"]).resolve() == WorkDir(work).stage_path(i, s["label"])
