"""A rebuild replayed from the request cache gives the released shards byte for byte (`megascience verify
--against` the published manifest passes), a differing shard is named, and the same folder gives the same commit."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from release_lib import CONFIGS, TAG, release_cli, work_args

CONFIG_ARGS = [a for c in CONFIGS for a in ("--config", c)]


def verify(folder: Path, against: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("megascience")
    return subprocess.run([str(exe), "verify", "--dir", str(folder), "--against", str(against)],
                          capture_output=True, text=True, timeout=300)


def sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cache_only_rebuild_verifies_against_the_published_manifest(built, released, tmp_path):
    from release_fixtures import build_all

    caches = {name: work / "cache.sqlite" for name, work in built["works"].items()}
    shutil.copytree(built["root"] / "sources", tmp_path / "sources")
    works = build_all(tmp_path, cache_from=caches)      # any cache miss would fail the run
    for name, work in works.items():
        assert json.loads((work / "manifest.json").read_text())["cache"]["cache_only"] is True, name
    rebuild = tmp_path / "rebuild"
    out = release_cli(*work_args(works), *CONFIG_ARGS, "--dest", str(rebuild), "--tag", TAG)
    assert out.returncode == 0, out.stderr
    published = released["dest"] / "manifest.json"

    ok = verify(rebuild, published)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK ")
    ours = json.loads((rebuild / "manifest.json").read_text())
    # the whole folder, manifest and README included, is the released one: nothing in it names the build's paths
    files = sorted(p.relative_to(rebuild) for p in rebuild.rglob("*") if p.is_file() and p.name != "RELEASE.json")
    assert files == sorted(p.relative_to(released["dest"]) for p in released["dest"].rglob("*")
                           if p.is_file() and ".git" not in p.parts and p.name != "RELEASE.json")
    assert all((rebuild / f).read_bytes() == (released["dest"] / f).read_bytes() for f in files)
    for name, conf in json.loads(published.read_text())["configs"].items():
        for shard in conf["shards"]:   # byte-identical, not only equal digests in two manifests
            assert (rebuild / shard["path"]).read_bytes() == (released["dest"] / shard["path"]).read_bytes()
        assert [s["sha256"] for s in ours["configs"][name]["shards"]] == [s["sha256"] for s in conf["shards"]]

    # a rebuild whose one shard differs (one row fewer, manifest consistent with it): named, exit 1
    shard = rebuild / ours["configs"]["natural_reasoning_dc_random"]["shards"][0]["path"]
    table = pq.read_table(shard)
    pq.write_table(table.slice(1), shard, compression="zstd")
    entry = ours["configs"]["natural_reasoning_dc_random"]["shards"][0]
    entry.update(rows=table.num_rows - 1, bytes=shard.stat().st_size, sha256=sha256(shard))
    (rebuild / "manifest.json").write_text(json.dumps(ours, indent=2))
    bad = verify(rebuild, published)
    assert bad.returncode == 1
    rel = "data/natural_reasoning_dc_random/train-00000-of-00001.parquet"
    assert f"shard {rel} differs" in bad.stderr and "natural_reasoning_dc_random" in bad.stderr
    assert [line for line in bad.stderr.splitlines() if line.startswith("FAIL")] == \
        [line for line in bad.stderr.splitlines() if rel in line]

    # a corrupted byte in another shard (manifest untouched): that shard is named too
    other = rebuild / ours["configs"]["textbook"]["shards"][0]["path"]
    data = bytearray(other.read_bytes())
    data[len(data) // 2] ^= 0xFF
    other.write_bytes(bytes(data))
    worse = verify(rebuild, published)
    assert worse.returncode == 1 and "data/textbook/train-00000-of-00001.parquet" in worse.stderr


def test_same_folder_same_commit_and_a_taken_tag_is_refused(built, released, tmp_path):
    fresh = tmp_path / "fresh"
    out = release_cli(*work_args(built["works"]), *CONFIG_ARGS, "--dest", str(fresh), "--git", "--tag", TAG,
                      "--message", "MegaScience test release v1.0")
    assert out.returncode == 0, out.stderr
    assert json.loads((fresh / "RELEASE.json").read_text())["sha"] == released["sha"]   # another folder, same sha

    # releasing the same again into the same repository: no new commit, the tag stays
    again = release_cli(*work_args(built["works"]), *CONFIG_ARGS, "--dest", str(fresh), "--git", "--tag", TAG,
                        "--message", "MegaScience test release v1.0", "--overwrite")
    assert again.returncode == 0, again.stderr
    log = subprocess.run(["git", "-C", str(fresh), "rev-list", "--count", "HEAD"], capture_output=True, text=True)
    assert log.stdout.strip() == "1"

    # different content under a tag that already names another commit: refused before the folder changes
    before = {p.relative_to(fresh): p.read_bytes() for p in fresh.rglob("*") if p.is_file() and ".git" not in p.parts}
    taken = release_cli(*work_args(built["works"]), "--config", "textbook", "--dest", str(fresh), "--git",
                        "--tag", TAG, "--overwrite")
    assert taken.returncode == 2
    assert f"tag '{TAG}' already names commit {released['sha']}" in taken.stderr
    after = {p.relative_to(fresh): p.read_bytes() for p in fresh.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before

    # a new tag for the new content: a second commit on main, the first tag unchanged
    v11 = release_cli(*work_args(built["works"]), "--config", "textbook", "--dest", str(fresh), "--git",
                      "--tag", "v1.1", "--overwrite")
    assert v11.returncode == 0, v11.stderr
    sha11 = json.loads((fresh / "RELEASE.json").read_text())["sha"]
    parents = subprocess.run(["git", "-C", str(fresh), "rev-parse", f"{sha11}^", f"{TAG}^{{commit}}"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert parents == [released["sha"], released["sha"]]
    assert sorted(p.name for p in (fresh / "data").iterdir()) == ["textbook"]
