"""Pinned revisions through a real Hub protocol (olah on loopback), streaming and not, online and offline."""
from __future__ import annotations

import json


def _rows(cfg, rev, streaming, extra=""):
    return (f"ds = msd.load_dataset({cfg!r}, source='acme/megascience', revision={rev!r}, split='train', "
            f"streaming={streaming}, progress=False{extra})\n"
            "rows = list(ds)\n")


def test_each_revision_returns_its_own_rows(client, hub):
    out = client(f"""
res = {{}}
uncached = msd.resolve_config("textbook", "v1.0", source="acme/megascience", streaming=True, progress=False)
res["urls"] = uncached.data_files
for rev in ["v1.0", "v1.1", {hub['shas']['v1.0']!r}, "main"]:
    for streaming in (True, False):   # streaming first: read from the Hub, not from the local store
        {_rows('textbook', 'REV', 'STREAM').replace("'REV'", 'rev').replace('STREAM', 'streaming').strip().replace(chr(10), chr(10) + '        ')}
        res[f"{{rev}}|{{streaming}}"] = [len(rows), rows[0]["question"].split(":")[0], sorted(rows[0])]
print(json.dumps(res))
""")
    sha10 = hub["shas"]["v1.0"]
    assert out["urls"] and all(u.startswith(f"hf://datasets/acme/megascience@{sha10}/data/textbook/train-")
                               for u in out["urls"])
    for streaming in ("False", "True"):
        assert out[f"v1.0|{streaming}"][:2] == [240, "v1.0-textbook-0"]
        assert out[f"v1.1|{streaming}"][:2] == [300, "v1.1-textbook-0"]
        assert out[f"{sha10}|{streaming}"][:2] == [240, "v1.0-textbook-0"]
        assert out[f"main|{streaming}"][:2] == [300, "v1.1-textbook-0"]
        assert out[f"v1.0|{streaming}"][2] == ["answer", "question", "reference_answer", "subject"]


def test_resolved_sha_and_plain_datasets_spelling(client, hub):
    out = client(f"""
r = msd.resolve_config("textbook", "v1.0", source="acme/megascience", progress=False)
plain = {{}}
for tag, sha in {json.dumps(hub['shas'])}.items():
    ds = datasets.load_dataset("acme/megascience", "textbook", revision=sha, split="train")
    it = datasets.load_dataset("acme/megascience", "textbook_random", revision=sha, split="train", streaming=True)
    plain[tag] = [len(ds), ds[0]["question"].split(":")[0], next(iter(it))["question"].split(":")[0]]
print(json.dumps({{"sha": r.sha, "files": [f.path for f in r.files], "plain": plain}}))
""")
    assert out["sha"] == hub["shas"]["v1.0"]
    assert out["files"] and all(p.startswith("data/textbook/train-") for p in out["files"])
    assert out["plain"]["v1.0"] == [240, "v1.0-textbook-0", "v1.0-random-0"]
    assert out["plain"]["v1.1"] == [300, "v1.1-textbook-0", "v1.1-random-0"]


def test_offline_serves_only_the_asked_revision(client, hub):
    client("""
for rev in ("v1.0", "v1.1"):
    msd.load_dataset("textbook", source="acme/megascience", revision=rev, progress=False)
print("{}")
""")
    out = client(f"""
res = {{}}
for rev in ("v1.0", "v1.1", {hub['shas']['v1.0']!r}):
    for streaming in (False, True):
        ds = msd.load_dataset("textbook", source="acme/megascience", revision=rev, split="train",
                              streaming=streaming, progress=False)
        res[f"{{rev}}|{{streaming}}"] = next(iter(ds))["question"].split(":")[0]
res["uncached_rev"] = err(lambda: msd.load_dataset("textbook", source="acme/megascience", revision="v2.0"))
res["uncached_cfg"] = err(lambda: msd.load_dataset("textbook_random", source="acme/megascience", revision="v1.0"))
print(json.dumps(res))
""", offline=True)
    for streaming in ("False", "True"):
        assert out[f"v1.0|{streaming}"] == "v1.0-textbook-0"
        assert out[f"v1.1|{streaming}"] == "v1.1-textbook-0"
        assert out[f"{hub['shas']['v1.0']}|{streaming}"] == "v1.0-textbook-0"
    assert out["uncached_rev"][0] == "UnavailableError" and "'v2.0'" in out["uncached_rev"][1]
    name, msg = out["uncached_cfg"]
    assert name == "UnavailableError"
    # names the revision asked for and the other cached one, and refuses to serve it
    assert hub["shas"]["v1.0"] in msg and hub["shas"]["v1.1"] in msg and "Refusing" in msg


def test_unknown_revision_is_a_clear_error_not_a_cache_fallback(client, hub):
    out = client("""
msd.load_dataset("textbook", source="acme/megascience", revision="v1.1", progress=False)
print(json.dumps({"bad": err(lambda: msd.load_dataset("textbook", source="acme/megascience", revision="v9.9")),
                  "bad_stream": err(lambda: msd.load_dataset("textbook", source="acme/megascience",
                                                              revision="v9.9", streaming=True)),
                  "bad_sha": err(lambda: msd.load_dataset("textbook", source="acme/megascience",
                                                           revision="0" * 40))}))
""")
    for key in ("bad", "bad_stream"):
        assert out[key][0] == "RevisionError"
        assert "'v9.9'" in out[key][1] and "acme/megascience" in out[key][1]
    assert out["bad_sha"][0] == "RevisionError"


def test_unpinned_upstream_is_resolved_and_locked(client, hub, commit_to, tmp_path):
    """`megascience` has no known sha: `main` is resolved at load time; a lock keeps it pinned."""
    first = hub["upstream_shas"][-1]
    out = client("""
r = msd.resolve_config("megascience", progress=False)
from megascience_datasets.lockfile import Lock
Lock({"megascience": r.locked()}).save("lock.json")
ds = msd.load_dataset("megascience", split="train", progress=False)
print(json.dumps({"sha": r.sha, "rows": len(ds), "first": ds[0]["question"].split(":")[0], "cols": ds.column_names}))
""")
    assert out["sha"] == first and out["rows"] == 120 and out["first"] == "up1-0-0"
    assert out["cols"] == ["question", "answer", "subject", "reference_answer", "source"]
    # a new commit on main: the lock still loads the pinned commit, an unlocked load gets the new one
    folder = tmp_path / "newup"
    (folder / "data").mkdir(parents=True)
    import pyarrow.parquet as pq
    from megascience_datasets.testing import fixture_table
    pq.write_table(fixture_table(50, "megascience", seed=99, tag="up2-"), folder / "data" / "train-00000-of-00001.parquet")
    new = commit_to(hub["upstream_repo"], folder, "upstream commit 2")
    try:
        out = client("""
locked = msd.load_dataset("megascience", split="train", lock="lock.json", progress=False)
fresh = msd.resolve_config("megascience", progress=False)
refused = err(lambda: msd.load_dataset("megascience", revision="main", lock="lock.json"))
print(json.dumps({"locked": [len(locked), locked[0]["question"].split(":")[0]], "fresh": fresh.sha, "refused": refused}))
""")
    finally:  # restore main for other tests
        from megascience_datasets.hubmirror import git
        git(hub["upstream_repo"], "reset", "-q", "--hard", first)
    assert out["locked"] == [120, "up1-0-0"]
    assert out["fresh"] == new
    assert out["refused"][0] == "IntegrityError" and first in out["refused"][1] and new in out["refused"][1]


def test_offline_from_huggingface_hub_snapshot_cache(client, hub):
    """A snapshot made by huggingface_hub (snapshot_download) is found offline through its refs/<tag>."""
    client("""
from huggingface_hub import snapshot_download
snapshot_download("acme/megascience", repo_type="dataset", revision="v1.0")
print("{}")
""")
    out = client(f"""
r = msd.resolve_config("textbook", "v1.0", source="acme/megascience", progress=False)
ds = msd.load_dataset("textbook", source="acme/megascience", revision="v1.0", split="train", progress=False)
other = err(lambda: msd.load_dataset("textbook", source="acme/megascience", revision="v1.1"))
print(json.dumps({{"sha": r.sha, "path": r.data_files[0], "rows": len(ds), "first": ds[0]["question"].split(":")[0],
                   "other": other}}))
""", offline=True)
    assert out["sha"] == hub["shas"]["v1.0"] and "/hub/datasets--acme--megascience/" in out["path"]
    assert [out["rows"], out["first"]] == [240, "v1.0-textbook-0"]
    assert out["other"][0] == "UnavailableError" and "'v1.1'" in out["other"][1]
