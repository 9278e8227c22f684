"""Derived configurations through the Hub protocol (olah on loopback): textbook_random from a tagged
`textbook` parent, the megascience views by `source`, the lock record, and the errors for missing inputs."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from megascience_datasets import derive
from megascience_datasets.errors import IntegrityError
from megascience_datasets.testing import fixture_table

RANDOM = """
import hashlib
from datasets.distributed import split_dataset_by_node
kw = dict(parent_revision={rev!r}, derive={{"n": {n}}}, split="train", progress=False)
stream = msd.load_dataset("textbook_random", streaming=True, **kw)
s_ids = [r["id"] for r in stream]
first = next(iter(stream))
full = msd.load_dataset("textbook_random", **kw)
sharded = {{}}
for world in (2, 3):
    sharded[world] = sorted(r["id"] for rank in range(world)
                            for r in split_dataset_by_node(stream, rank=rank, world_size=world))
res = msd.resolve_config("textbook_random", parent_revision={rev!r}, derive={{"n": {n}}}, progress=False)
parent = msd.load_dataset("textbook", revision={rev!r}, split="train", progress=False)
print(json.dumps({{"stream": s_ids, "full": list(full["id"]), "sharded": {{str(k): v for k, v in sharded.items()}},
                  "cols": sorted(first), "prov": json.loads(first["provenance"]), "record": res.plan.record(),
                  "parent_rows": [dict(question=r["question"], answer=r["answer"], subject=r["subject"],
                                       reference_answer=r["reference_answer"]) for r in parent],
                  "shards": stream.num_shards}}))
"""


def _random(client, rev, n=100):
    return client(RANDOM.format(rev=rev, n=n))


def test_textbook_random_same_rows_streaming_prepared_and_sharded(client, hub):
    out = _random(client, "fx1", n=100)
    ids = out["stream"]
    assert len(ids) == 100 and len(set(ids)) == 100                    # exact size
    assert out["full"] == ids                                          # prepared == streamed, same order
    assert out["sharded"]["2"] == sorted(ids) and out["sharded"]["3"] == sorted(ids)
    assert out["shards"] >= 2
    assert out["cols"] == ["answer", "id", "provenance", "question", "reference_answer", "subject"]
    # ids are the documented content ids of parent rows, and the selection is the n smallest seeded numbers
    parent_ids = [derive.row_id(**r) for r in out["parent_rows"]]
    assert len(parent_ids) == 300 and set(ids) <= set(parent_ids)
    u = derive.uniform_u01(0, parent_ids)
    expected = [i for i, x in zip(parent_ids, u) if x <= sorted(u)[99]]
    assert ids == expected
    rec = out["record"]
    assert rec["parent"] == "textbook" and rec["parent_sha"] == hub["textbook_shas"]["fx1"]
    assert rec["rule"] == "select_random" and rec["seed"] == 0 and rec["parameters"]["n"] == 100
    assert rec["rows"] == 100 and rec["parent_rows"] == 300 and rec["ids_sha256"] == derive.ids_digest(ids)
    prov = out["prov"]
    assert prov["origin"]["revision"] == hub["textbook_shas"]["fx1"] and prov["steps"][0]["stage"] == "select_random"
    assert 0 <= prov["signals"]["random_u01"] < 1


def test_second_parent_revision_gives_a_different_recorded_derivation(client, hub):
    a, b = _random(client, "fx1", n=60), _random(client, "fx2", n=60)
    assert a["record"]["parent_sha"] != b["record"]["parent_sha"] == hub["textbook_shas"]["fx2"]
    assert a["record"]["ids_sha256"] != b["record"]["ids_sha256"] and b["record"]["parent_rows"] == 320
    assert not set(a["stream"]) & set(b["stream"])


def test_lock_records_the_derivation_and_refuses_other_ids(client, hub, tmp_path):
    out = client("""
r = msd.resolve_config("textbook_random", parent_revision="fx1", derive={"n": 80}, progress=False)
from megascience_datasets.lockfile import Lock
Lock({"textbook_random": r.locked()}).save("lock.json")
again = msd.load_dataset("textbook_random", lock="lock.json", split="train", streaming=True, progress=False)
print(json.dumps({"lock": json.load(open("lock.json")), "again": [x["id"] for x in again]}))
""")
    entry = out["lock"]["configs"]["textbook_random"]
    rec = entry["derivation"]
    assert entry["sha"] == hub["textbook_shas"]["fx1"] and entry["rows"] == 80
    assert entry["source"] == "hub:MegaScience/TextbookReasoning" and len(entry["files"]) == 2
    assert {"parent", "parent_sha", "rule", "parameters", "seed", "rows", "ids_sha256"} <= set(rec)
    assert len(out["again"]) == 80 and derive.ids_digest(out["again"]) == rec["ids_sha256"]
    # a lock whose ids differ (another seed's selection, say) is refused
    lock = out["lock"]
    lock["configs"]["textbook_random"]["derivation"]["ids_sha256"] = "0" * 64
    (client.home.parent / "bad.json").write_text(json.dumps(lock))
    bad = client("""
print(json.dumps({"e": err(lambda: msd.load_dataset("textbook_random", lock="bad.json", split="train",
                                                     streaming=True, progress=False))}))
""")
    name, msg = bad["e"]
    assert name == "IntegrityError" and "ids_sha256" in msg and "0" * 64 in msg and rec["ids_sha256"] in msg


def test_megascience_views_by_source(client, hub):
    out = client("""
res = {}
for part in ("textbook", "natural_reasoning", "nemotron_science"):
    name = "megascience_" + part
    s = msd.load_dataset(name, split="train", streaming=True, progress=False)
    f = msd.load_dataset(name, split="train", progress=False)
    r = msd.resolve_config(name, progress=False)
    res[part] = {"stream": [x["id"] for x in s], "full": list(f["id"]), "sources": sorted(set(f["source"])),
                 "record": r.plan.record()}
whole = msd.load_dataset("megascience", split="train", progress=False)
res["whole"] = [whole.num_rows, sorted(set(whole["source"]))]
print(json.dumps(res))
""")
    total, values = out["whole"]
    assert values == ["natural_reasoning", "nemotron_science", "textbook"]
    assert sum(len(out[p]["full"]) for p in ("textbook", "natural_reasoning", "nemotron_science")) == total
    for part in ("textbook", "natural_reasoning", "nemotron_science"):
        o = out[part]
        assert o["stream"] == o["full"] and o["sources"] == [part]
        assert o["record"]["source_values"] == {part: len(o["full"])}
        assert o["record"]["rule"] == "source_view" and o["record"]["rows"] == len(o["full"])
        assert o["record"]["parent_sha"] == hub["upstream_shas"][-1]


def test_unknown_source_value_is_refused_naming_shard_and_row(tmp_path):
    import megascience_datasets as msd
    from megascience_datasets.repo_folder import write_repo_folder
    t = fixture_table(30, "megascience", seed=3)
    values = t.column("source").to_pylist()
    values[17] = "WebInstruct"
    import pyarrow as pa
    t = t.set_column(t.schema.get_field_index("source"), "source", pa.array(values))
    write_repo_folder(tmp_path / "rel", {"megascience": [t]}, revision={"tag": "x", "sha": None})
    with pytest.raises(IntegrityError) as e:
        msd.resolve_config("megascience_textbook", parent_source=str(tmp_path / "rel"), cache_dir=tmp_path / "c",
                           progress=False)
    msg = str(e.value)
    assert "'WebInstruct'" in msg and "row 17" in msg and "data/megascience/train-00000-of-00001.parquet" in msg


def test_paper_size_needs_a_big_enough_parent_and_missing_inputs_are_named(tmp_path):
    import megascience_datasets as msd
    from megascience_datasets.repo_folder import write_repo_folder
    write_repo_folder(tmp_path / "rel", {"textbook": [fixture_table(50, "textbook", seed=3)]},
                      revision={"tag": "x", "sha": None})
    with pytest.raises(IntegrityError, match=r"n=297600 rows asked for, but the parent has only 50 rows"):
        msd.resolve_config("textbook_random", parent_source=str(tmp_path / "rel"), cache_dir=tmp_path / "c",
                           progress=False)
    with pytest.raises(msd.UsageError) as e:
        msd.resolve_config("natural_reasoning_dc_random", progress=False)
    msg = str(e.value)
    assert "no release repository is set" in msg and "natural_reasoning_dc_signals" in msg
    assert "parent 'natural_reasoning_dc'" in msg and "MEGASCIENCE_RELEASE" in msg


def test_row_id_is_the_build_content_id():
    records = pytest.importorskip("megascience_build.engine.records")
    import hashlib
    row = ("Q?", "A.", "physics", "5 m/s")
    assert derive.row_id(*row) == records.content_id(*(hashlib.sha256(v.encode()).hexdigest() for v in row))
    assert derive.row_id("Q", None, "s", "r") == records.content_id(
        hashlib.sha256(b"Q").hexdigest(), None, hashlib.sha256(b"s").hexdigest(), hashlib.sha256(b"r").hexdigest())
    sel = pytest.importorskip("megascience_build.selection.subsets")
    ids = [derive.row_id(str(i), "a", "s", "r") for i in range(50)]
    assert (derive.uniform_u01(7, ids) == sel.uniform_u01(7, ids)).all()
    import pyarrow as pa
    assert derive.ids_digest(ids) == sel.ids_digest(pa.array(ids))


def test_embedded_sample_shows_derived_configurations_by_their_rule(tmp_path):
    import megascience_datasets as msd
    kw = dict(sample=True, split="train", cache_dir=tmp_path, progress=False)
    tb, tr = msd.load_dataset("textbook", **kw), msd.load_dataset("textbook_random", **kw)
    parent_ids = [derive.row_id(r["question"], r["answer"], r["subject"], r["reference_answer"]) for r in tb]
    assert len(tr) == max(1, round(len(tb) * 297600 / 651840)) < len(tb)          # the paper's fraction
    u = derive.uniform_u01(0, parent_ids)
    assert list(tr["id"]) == [i for i, x in zip(parent_ids, u) if x <= sorted(u)[len(tr) - 1]]
    ms = msd.load_dataset("megascience", **kw)
    total = 0
    for part in derive.PARTS:
        v = msd.load_dataset(f"megascience_{part}", **kw)
        assert len(v) and {derive.part_of(s) for s in v["source"]} == {part}
        total += len(v)
    assert total == len(ms)
    # the selection subsets that need signals are not copies of their parent
    for name in ("textbook_difficulty", "textbook_length", "textbook_hardest"):
        assert set(msd.load_dataset(name, **kw)["question"]) != set(tb["question"])
    # ... they are what their rule gives on the sample's (hand-set) signals
    sig = msd.load_dataset("textbook_signals", **kw)
    assert list(sig["id"]) == parent_ids
    medium = [i for i, d in zip(sig["id"], sig["difficulty"]) if 1 < d < 9]
    assert list(msd.load_dataset("textbook_difficulty", **kw)["id"]) == medium
    assert list(msd.load_dataset("textbook_hardest", **kw)["id"]) == [i for i, d in zip(sig["id"], sig["difficulty"]) if d < 6]


SIGNALS = """
import numpy as np, pyarrow as pa
from megascience_datasets import derive
from megascience_datasets.repo_folder import write_repo_folder
from megascience_build.selection import subsets as sel
parent = msd.load_dataset("textbook", revision="fx1", split="train", progress=False)
ids = [derive.row_id(r["question"], r["answer"], r["subject"], r["reference_answer"]) for r in parent]
k = np.arange(len(ids))
signals = pa.table({"id": ids, "response_length": pa.array((k * 37) % 500 + 10, pa.int64()),
                    "length_excluded": pa.array(k % 11 == 0), "difficulty": pa.array(((k * 7) % 41) / 4.0),
                    "random_u01": pa.array(derive.uniform_u01(0, ids))})
# the build's own selection code gives the counts and digests the release manifest records
subs = sel.table3_subsets(signals, "textbook", seed=0) + [sel.select_difficulty_below(signals, 6.0, name="textbook_hardest", parent="textbook")]
records = {s.name: s.record(signals) for s in subs}
write_repo_folder("rel", {"textbook_signals": [signals]}, revision={"tag": "s1", "sha": None},
                  extra={"textbook_signals": {"subsets": records, "signals": {"models": [{"id": "Qwen/Qwen2.5-7B-Instruct", "revision": "abc"}]}}})
out = {"records": {n: [r["rows"], r["ids_sha256"]] for n, r in records.items()}}
for name in ("textbook_difficulty", "textbook_length", "textbook_random", "textbook_hardest"):
    s = msd.load_dataset(name, source="rel", parent_revision="fx1", split="train", streaming=True, progress=False)
    f = msd.load_dataset(name, source="rel", parent_revision="fx1", split="train", progress=False)
    r = msd.resolve_config(name, source="rel", parent_revision="fx1", progress=False)
    out[name] = {"stream": [x["id"] for x in s], "full": list(f["id"]), "record": r.plan.record()}
from megascience_datasets.lockfile import Lock
Lock({"textbook_length": msd.resolve_config("textbook_length", source="rel", parent_revision="fx1", progress=False).locked()}).save("lock.json")
out["locked"] = len(list(msd.load_dataset("textbook_length", lock="lock.json", split="train", streaming=True, progress=False)))
out["other_parent"] = err(lambda: msd.resolve_config("textbook_difficulty", source="rel", parent_revision="fx2", progress=False))
import json as _j
m = _j.load(open("rel/manifest.json"))
m["configs"]["textbook_signals"]["subsets"]["textbook_random"]["ids_sha256"] = "f" * 64
_j.dump(m, open("rel/manifest.json", "w"))
out["tampered"] = err(lambda: msd.resolve_config("textbook_random", source="rel", parent_revision="fx1", progress=False))
out["no_signals"] = err(lambda: msd.resolve_config("textbook_difficulty", progress=False))
print(json.dumps(out))
"""


def test_signals_only_release_gives_every_table3_subset_and_the_hardest(client, hub):
    pytest.importorskip("megascience_build.selection.subsets")
    out = client(SIGNALS)
    n = out["records"]["textbook_difficulty"][0]
    assert 0 < n < 300
    for name in ("textbook_difficulty", "textbook_length", "textbook_random", "textbook_hardest"):
        o = out[name]
        rows, digest = out["records"][name]
        assert o["stream"] == o["full"] and len(o["full"]) == rows == o["record"]["rows"]
        assert o["record"]["ids_sha256"] == digest and o["record"]["parent_sha"] == hub["textbook_shas"]["fx1"]
        assert o["record"]["signals"]["config"] == "textbook_signals"
    # the protocol: difficulty fixes n, length and random take the same n
    assert len(out["textbook_length"]["full"]) == len(out["textbook_random"]["full"]) == n
    assert out["locked"] == n
    name, msg = out["other_parent"]
    assert name == "IntegrityError" and "parent lacks" in msg and "parent_revision" in msg
    name, msg = out["tampered"]
    assert name == "IntegrityError" and "f" * 64 in msg and "release manifest" in msg
    name, msg = out["no_signals"]
    assert name == "MissingInputError" and "textbook_signals" in msg and "no release repository is set" in msg


def test_cli_download_writes_a_derived_configuration_and_its_lock(tmp_path, capsys):
    import megascience_datasets as msd
    from megascience_datasets.cli import main
    from megascience_datasets.repo_folder import write_repo_folder
    write_repo_folder(tmp_path / "rel", {"textbook": [fixture_table(90, "textbook", seed=8)]},
                      revision={"tag": "x", "sha": None})
    out = tmp_path / "out"
    assert main(["download", "textbook_random", "--parent-source", str(tmp_path / "rel"), "--n", "30",
                 "--dir", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    rec = manifest["configs"]["textbook_random"]["derivation"]
    lock = json.loads((out / "megascience.lock.json").read_text())["configs"]["textbook_random"]
    assert manifest["configs"]["textbook_random"]["rows"] == 30 == rec["rows"] == lock["derivation"]["rows"]
    assert rec["ids_sha256"] == lock["derivation"]["ids_sha256"]
    # the written folder is now a release that holds it: loading from there gives the same ids
    ds = msd.load_dataset("textbook_random", source=str(out), split="train", cache_dir=tmp_path / "c", progress=False)
    assert derive.ids_digest(list(ds["id"])) == rec["ids_sha256"]
    assert main(["download", "natural_reasoning_dc_length", "--dir", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "natural_reasoning_dc_signals" in err and "parent 'natural_reasoning_dc'" in err


def test_plan_is_remembered_for_the_same_parent_shards_rule_and_seed(tmp_path, monkeypatch):
    import megascience_datasets as msd
    from megascience_datasets.repo_folder import write_repo_folder
    write_repo_folder(tmp_path / "rel", {"textbook": [fixture_table(80, "textbook", seed=9)]},
                      revision={"tag": "x", "sha": None})
    kw = dict(parent_source=str(tmp_path / "rel"), cache_dir=tmp_path / "c", progress=False)
    first = msd.resolve_config("textbook_random", derive={"n": 25}, **kw)
    assert len(list((tmp_path / "c" / "megascience_store" / "derived").glob("*.npz"))) == 1
    calls = []
    monkeypatch.setattr(derive, "make_plan", lambda *a, **k: calls.append(1))
    again = msd.resolve_config("textbook_random", derive={"n": 25}, **kw)
    assert not calls and again.plan.record() == first.plan.record()
    streamed = [r["id"] for r in msd.load_dataset("textbook_random", derive={"n": 25}, split="train", streaming=True, **kw)]
    assert derive.ids_digest(streamed) == first.plan.ids_sha256
    monkeypatch.undo()                      # another n is another plan: computed, not taken from the cache
    other = msd.resolve_config("textbook_random", derive={"n": 26}, **kw)
    assert other.plan.rows == 26 and other.plan.ids_sha256 != first.plan.ids_sha256
    assert len(list((tmp_path / "c" / "megascience_store" / "derived").glob("*.npz"))) == 2


def test_dataloader_workers_read_every_derived_row_once(tmp_path):
    import torch.utils.data
    import megascience_datasets as msd
    from megascience_datasets.repo_folder import write_repo_folder
    write_repo_folder(tmp_path / "rel", {"textbook": [fixture_table(400, "textbook", seed=4)]},
                      revision={"tag": "x", "sha": None}, max_shard_bytes=150_000)
    kw = dict(parent_source=str(tmp_path / "rel"), derive={"n": 150}, split="train", cache_dir=tmp_path / "c",
              progress=False)
    ds = msd.load_dataset("textbook_random", streaming=True, **kw)
    assert ds.num_shards >= 2
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                         multiprocessing_context="spawn")    # spawn: the plan is pickled
    seen = [r["id"] for r in loader]
    full = list(msd.load_dataset("textbook_random", **kw)["id"])
    assert len(seen) == 150 and sorted(seen) == sorted(full)
