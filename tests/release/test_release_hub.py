"""A release built through the real engine, committed with --git and a tag, served by olah on loopback, and
loaded back through the three loader spellings at the tag and at the commit sha."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from release_lib import CONFIGS, REPO_ID, TAG
from megascience_datasets.catalogue import load_catalogue


def stage_rows(work: Path, label: str):
    (folder,) = (work / "stages").glob(f"*_{label}")
    return pq.read_table(sorted(folder.glob("part-*.parquet")))


def expected_questions(works: dict) -> dict[str, list[str]]:
    """What each configuration must hold, read straight from the work directories."""
    out = {"textbook": stage_rows(works["textbook"], "finalize").column("question").to_pylist(),
           "textbook_difficulty_distill":
               stage_rows(works["textbook_difficulty_distill"], "finalize").column("question").to_pylist(),
           "natural_reasoning": stage_rows(works["natural_reasoning"], "dedup").column("question").to_pylist()}
    pool = stage_rows(works["natural_reasoning"], "select_subsets")
    for rule in ("difficulty", "length", "random"):
        out[f"natural_reasoning_dc_{rule}"] = pool.filter(
            pc.fill_null(pool.column(f"selected_{rule}"), False)).column("question").to_pylist()
    return out


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_release_folder_is_a_tagged_git_dataset_repository(released, built):
    dest, sha = released["dest"], released["sha"]
    assert released["stdout"].strip().splitlines()[-1] == sha
    assert git(dest, "rev-parse", f"{TAG}^{{commit}}") == sha == git(dest, "rev-parse", "HEAD")
    assert git(dest, "status", "--porcelain") == ""          # RELEASE.json is kept out of the commit
    assert git(dest, "log", "-1", "--format=%an <%ae> %aI|%s") == \
        "megascience-build <release@megascience.invalid> 2025-07-22T00:00:00+00:00|MegaScience test release v1.0"
    tracked = set(git(dest, "ls-files").splitlines())
    assert {"README.md", "manifest.json", "cards/released.md", "cards/selection.md", "cards/pipeline.md"} <= tracked
    assert (dest / "cards" / "pipeline.md").read_text() == \
        (Path(__file__).resolve().parents[2] / "dataset_cards" / "pipeline.md").read_text()

    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["default"] == "textbook" and manifest["revision"]["tag"] == TAG
    assert sorted(manifest["configs"]) == sorted(CONFIGS)
    want = expected_questions(built["works"])
    for name, conf in manifest["configs"].items():
        assert conf["rows"] == len(want[name]) > 0, name
        for shard in conf["shards"]:
            assert shard["path"] in tracked
            assert pq.read_metadata(dest / shard["path"]).num_rows == shard["rows"]
    # per configuration: rule, seed, counts, source revisions, models, prompt hashes from the work manifests
    rnd = manifest["configs"]["natural_reasoning_dc_random"]
    assert rnd["subset"]["rule"] == "select_random" and rnd["subset"]["parameters"]["n"] == rnd["rows"]
    assert rnd["upstream"]["repo"] == "facebook/natural_reasoning" and len(rnd["upstream"]["revision"]) == 40
    assert {m["role"] for m in manifest["configs"]["natural_reasoning_dc_difficulty"]["models"]} >= {"policy", "grader"}
    distill = manifest["configs"]["textbook_difficulty_distill"]
    work_manifest = json.loads((built["works"]["textbook_difficulty_distill"] / "manifest.json").read_text())
    assert distill["pipeline"]["sha256"] == work_manifest["pipeline"]["sha256"]
    assert distill["prompts"] == [{"name": p["name"], "sha256": p["sha256"]} for p in work_manifest["stages"][0]["prompts"]]
    assert distill["models"][0]["model"] == "scripted/annotator"
    assert [c["stage"] for c in distill["counts"]] == ["annotate_solution", "finalize"]
    assert manifest["configs"]["textbook"]["counts"][0]["rows_in"] == 48

    # README YAML: the default configuration first, every configuration's files and sizes
    meta = yaml.safe_load((dest / "README.md").read_text().split("---\n")[1])
    assert [c["config_name"] for c in meta["configs"]][0] == "textbook" and meta["configs"][0]["default"] is True
    assert sorted(c["config_name"] for c in meta["configs"]) == sorted(CONFIGS)
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert all(infos[n]["splits"][0]["num_examples"] == manifest["configs"][n]["rows"] for n in CONFIGS)
    record = released["record"]
    assert record["git"]["sha"] == sha and record["configs"]["textbook"]["rows"] == len(want["textbook"])


@pytest.mark.parametrize("ref", ["tag", "sha"])
def test_three_spellings_load_the_release(client, released, built, tmp_path, ref):
    rev = TAG if ref == "tag" else released["sha"]
    want = expected_questions(built["works"])
    # a local checkout of that revision named megascience/ for the bare-name spelling
    local = tmp_path / "checkout"
    (local / "megascience").mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(released["dest"]), "archive", rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(local / "megascience")], input=archive.stdout, check=True)
    out = client(f"""
import os
res = {{}}
for cfg in {CONFIGS!r}:
    kw = {{}} if cfg != "textbook" else {{"source": {REPO_ID!r}}}  # textbook's catalogue source is upstream
    res[cfg] = {{
        "msd": msd.load_dataset(cfg, revision={rev!r}, split="train", progress=False, **kw)["question"][:],
        "msd_stream": [r["question"] for r in msd.load_dataset(cfg, revision={rev!r}, split="train", streaming=True,
                                                             progress=False, **kw)],
        "sha": msd.resolve_config(cfg, {rev!r}, progress=False, **kw).sha,
        "hub": datasets.load_dataset({REPO_ID!r}, cfg, revision={rev!r}, split="train")["question"][:],
        "local": datasets.load_dataset("megascience", cfg, split="train")["question"][:],
    }}
res["default"] = datasets.load_dataset("megascience", split="train")["question"][:]
print(json.dumps(res))
""", cwd=local, MEGASCIENCE_RELEASE=REPO_ID)
    for cfg in CONFIGS:
        got = out[cfg]
        assert got["sha"] == released["sha"]
        for spelling in ("msd", "msd_stream", "hub", "local"):
            assert got[spelling] == want[cfg], (cfg, spelling)
    assert out["default"] == want["textbook"]


def test_unknown_tag_is_an_error_not_other_data(client, released):
    out = client("""
try:
    msd.load_dataset("textbook_difficulty_distill", revision="v9.9", progress=False)
    res = {"error": None}
except Exception as e:
    res = {"error": [type(e).__name__, str(e)]}
print(json.dumps(res))
""", MEGASCIENCE_RELEASE=REPO_ID)
    assert out["error"][0] == "RevisionError" and "'v9.9'" in out["error"][1]


def test_catalogue_points_release_configs_at_the_release_repository():
    cat = load_catalogue()
    built_here = [c for c in CONFIGS if c != "textbook"]
    assert all(cat[c].source.kind == "release" for c in built_here)
    assert cat.release.repo_env == "MEGASCIENCE_RELEASE"
