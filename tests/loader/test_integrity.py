"""Corrupted, truncated, substituted and missing shards; wrong schema; lock refusal; path traversal."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import megascience_datasets as msd
from megascience_datasets.errors import IntegrityError, RevisionError, UnknownConfigError, UsageError
from megascience_datasets.lockfile import parse_lock
from megascience_datasets.safety import contained


def _shard(folder: Path, cfg: str = "textbook") -> Path:
    return sorted((folder / "data" / cfg).glob("*.parquet"))[0]


def _store_files(cache: Path) -> list[Path]:
    return [p for p in (cache / "megascience_store").rglob("*.parquet")] if cache.exists() else []


def test_corrupted_shard_on_the_hub_errors_leaves_no_cache_and_retry_succeeds(client, hub, commit_to, tmp_path):
    repo = hub["release_repo"]
    good = tmp_path / "good"
    shutil.copytree(hub["root"] / "datasets" / "acme" / "megascience", good, ignore=shutil.ignore_patterns(".git"))
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    shard = _shard(bad)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF                                   # same size, different content
    shard.write_bytes(bytes(data))
    from megascience_datasets.hubmirror import git
    head = git(repo, "rev-parse", "HEAD")
    commit_to(repo, bad, "corrupted shard", tag="corrupt")
    try:
        out = client("""
e = err(lambda: msd.load_dataset("textbook", source="acme/megascience", revision="corrupt", progress=False))
import pathlib
store = pathlib.Path(datasets.config.HF_DATASETS_CACHE) / "megascience_store"
arrow = [str(p) for p in pathlib.Path(datasets.config.HF_DATASETS_CACHE).rglob("*.arrow")]
print(json.dumps({"err": e, "store": [str(p) for p in store.rglob("*.parquet")], "arrow": arrow}))
""")
        name, msg = out["err"]
        assert name == "IntegrityError"
        assert shard.relative_to(bad).as_posix() in msg and "sha256" in msg and "expected" in msg
        assert out["store"] == [] and out["arrow"] == []
        fixed = commit_to(repo, good, "fix the shard")               # the fault is fixed at the source
        out = client("""
ds = msd.load_dataset("textbook", source="acme/megascience", revision="main", split="train", progress=False)
print(json.dumps({"rows": len(ds), "first": ds[0]["question"].split(":")[0]}))
""")
        assert out == {"rows": 300, "first": "v1.1-textbook-0"}
        assert fixed != head
    finally:
        git(repo, "tag", "-d", "corrupt")
        git(repo, "reset", "-q", "--hard", head)


@pytest.mark.parametrize("fault", ["truncated", "substituted", "flipped", "missing", "extra", "schema"])
def test_local_faults_are_named(tiny_folder, tmp_path, fault):
    shard = _shard(tiny_folder)
    rel = shard.relative_to(tiny_folder).as_posix()
    if fault == "truncated":
        shard.write_bytes(shard.read_bytes()[:-100])
    elif fault == "substituted":
        pq.write_table(pq.read_table(shard).slice(1), shard)     # a valid parquet file, other content
    elif fault == "flipped":                                     # same size: only the sha256 can tell
        data = bytearray(shard.read_bytes())
        data[len(data) // 3] ^= 0x01
        shard.write_bytes(bytes(data))
    elif fault == "missing":
        shard.unlink()
    elif fault == "extra":
        shutil.copy(shard, shard.with_name("train-99999-of-99999.parquet"))
    elif fault == "schema":
        m = json.loads((tiny_folder / "manifest.json").read_text())
        t = pq.read_table(shard).rename_columns(["question", "answer", "topic", "reference_answer"])
        pq.write_table(t, shard)
        for s in m["configs"]["textbook"]["shards"]:
            if s["path"] == rel:
                import hashlib
                s["bytes"], s["sha256"] = shard.stat().st_size, hashlib.sha256(shard.read_bytes()).hexdigest()
        (tiny_folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IntegrityError) as ei:
        msd.load_dataset("textbook", source=str(tiny_folder), cache_dir=tmp_path / "c", progress=False)
    msg = str(ei.value)
    if fault == "extra":
        assert "train-99999-of-99999.parquet" in msg
    else:
        assert rel in msg
    expect = {"truncated": "truncated", "substituted": "expected", "flipped": "corrupted or substituted",
              "missing": "missing",
              "schema": "missing column(s) ['subject']"}.get(fault, "unexpected")
    assert expect in msg
    assert not list((tmp_path / "c").rglob("*.arrow"))


def test_unknown_config_and_revision_of_a_folder(tiny_folder, tmp_path):
    with pytest.raises(UnknownConfigError, match="unknown configuration 'textbooks'"):
        msd.load_dataset("textbooks", source=str(tiny_folder), cache_dir=tmp_path)
    with pytest.raises(RevisionError, match="'v9'"):
        msd.load_dataset("textbook", source=str(tiny_folder), revision="v9", cache_dir=tmp_path)


def test_lock_refuses_other_data(tiny_folder, tmp_path):
    r = msd.resolve_config("textbook", source=str(tiny_folder), cache_dir=tmp_path, progress=False)
    lock = msd.Lock({"textbook": r.locked()})
    lock.save(tmp_path / "lock.json")
    ds = msd.load_dataset("textbook", source=str(tiny_folder), lock=tmp_path / "lock.json", split="train",
                          cache_dir=tmp_path, progress=False)
    assert len(ds) == 60
    with pytest.raises(UsageError, match="no entry for configuration 'textbook_random'"):
        msd.load_dataset("textbook_random", source=str(tiny_folder), lock=lock, cache_dir=tmp_path)
    # the folder is rewritten with other rows: a new revision, refused under the lock
    from megascience_datasets.repo_folder import write_repo_folder
    from megascience_datasets.testing import fixture_table
    write_repo_folder(tiny_folder, {"textbook": [fixture_table(61, seed=5)]}, overwrite=True)
    with pytest.raises(IntegrityError, match="refusing other data"):
        msd.load_dataset("textbook", source=str(tiny_folder), lock=lock, cache_dir=tmp_path)
    # a lock naming another source is refused too
    data = json.loads(lock.to_json())
    data["configs"]["textbook"]["source"] = "hub:acme/megascience"
    with pytest.raises(IntegrityError, match="pins source hub:acme/megascience"):
        msd.load_dataset("textbook", source=str(tiny_folder), lock=parse_lock(data), cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["../etc", "TEXTBOOK", "a/b", "", "x" * 65, "textbook\n"])
def test_unsafe_config_names_rejected(name, tmp_path):
    with pytest.raises(UsageError):
        msd.load_dataset(name, sample=True, cache_dir=tmp_path)


@pytest.mark.parametrize("rev", ["../../etc", "-rf", "a b", "v1/../../x", "/abs"])
def test_unsafe_revisions_rejected(rev, tiny_folder, tmp_path):
    with pytest.raises(UsageError):
        msd.load_dataset("textbook", source="acme/megascience", revision=rev, cache_dir=tmp_path)


@pytest.mark.parametrize("path", ["../../../etc/passwd", "data/textbook/../../x.parquet", "/etc/passwd",
                                  "data\\..\\x.parquet", "data/./x.parquet"])
def test_traversal_in_manifest_and_lock_rejected(path, tiny_folder, tmp_path):
    m = json.loads((tiny_folder / "manifest.json").read_text())
    m["configs"]["textbook"]["shards"][0]["path"] = path
    (tiny_folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UsageError, match="unsafe"):
        msd.load_dataset("textbook", source=str(tiny_folder), cache_dir=tmp_path)
    lock = {"format_version": 1, "configs": {"textbook": {"source": "hub:a/b", "revision": "main", "sha": "a" * 40,
                                                          "files": [{"path": path, "size": 1, "sha256": "0" * 64}]}}}
    with pytest.raises(UsageError, match="unsafe"):
        parse_lock(lock)


def test_symlink_escape_rejected(tmp_path):
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "data" / "evil.parquet").symlink_to("/etc/passwd")
    with pytest.raises(UsageError, match="outside"):
        contained(root, "data/evil.parquet")


def test_retry_after_a_local_fix_succeeds(tiny_folder, tmp_path):
    shard = _shard(tiny_folder)
    original = shard.read_bytes()
    data = bytearray(original)
    data[len(data) // 3] ^= 0x01
    shard.write_bytes(bytes(data))
    for streaming in (False, True):
        with pytest.raises(IntegrityError, match="sha256"):
            msd.load_dataset("textbook", source=str(tiny_folder), streaming=streaming, cache_dir=tmp_path / "c",
                             progress=False)
    assert not list((tmp_path / "c").rglob("*.arrow"))
    shard.write_bytes(original)
    ds = msd.load_dataset("textbook", source=str(tiny_folder), split="train", cache_dir=tmp_path / "c", progress=False)
    assert len(ds) == 60


def test_a_quiet_load_gives_back_the_callers_progress_bar_setting(tmp_path):
    # a caller (the demo, a script writing a log) that turned datasets' bars off keeps them off
    import datasets

    datasets.disable_progress_bars()
    try:
        msd.load_dataset("textbook", sample=True, split="train", cache_dir=tmp_path, progress=False)
        assert not datasets.is_progress_bar_enabled()
    finally:
        datasets.enable_progress_bars()
    msd.load_dataset("textbook", sample=True, split="train", cache_dir=tmp_path / "again", progress=False)
    assert datasets.is_progress_bar_enabled()
