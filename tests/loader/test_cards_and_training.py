"""Cards against the catalogue; training use (node split, DataLoader workers, shuffle, projection, filters)."""
from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import DatasetCard

import megascience_datasets as msd
from megascience_datasets.cards import FAMILIES, render_family_card
from megascience_datasets.catalogue import load_catalogue

CARDS = Path(__file__).resolve().parents[2] / "dataset_cards"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_card_matches_catalogue(family):
    path = CARDS / f"{family}.md"
    assert path.read_text() == render_family_card(family), f"{path} is stale: megascience card --family {family}"
    card = DatasetCard.load(path)
    data = card.data.to_dict()
    cat = load_catalogue()
    members = [e for e in cat if e.group == family]
    assert [c["config_name"] for c in data["configs"]] == [e.name for e in members]
    assert data["configs"][0].get("default") is True
    infos = {i["config_name"]: i for i in data["dataset_info"]}
    for e in members:
        assert [(f["name"], f["dtype"]) for f in infos[e.name]["features"]] == list(e.features.items())
        assert e.license == data["license"]
        assert f"`{e.name}`" in card.text


def test_every_configuration_has_exactly_one_card():
    seen = []
    for family in FAMILIES:
        seen += [c["config_name"] for c in DatasetCard.load(CARDS / f"{family}.md").data.to_dict()["configs"]]
    assert sorted(seen) == sorted(load_catalogue().names)


def test_sample_only_when_asked(tmp_path, monkeypatch):
    ds = msd.load_dataset("textbook", sample=True, split="train", cache_dir=tmp_path, progress=False)
    import json
    from megascience_datasets.resolve import sample_dir
    expected = json.loads((sample_dir() / "manifest.json").read_text())["configs"]["textbook"]["rows"]
    assert expected > 0 and len(ds) == expected and "sample" not in ds.info.description.lower()
    monkeypatch.delenv("MEGASCIENCE_RELEASE", raising=False)
    with pytest.raises(msd.UsageError, match="MEGASCIENCE_RELEASE"):
        msd.load_dataset("natural_reasoning_dc_random", cache_dir=tmp_path)
    # a derivable configuration goes to its public parent instead of asking for a release
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(msd.UnavailableError, match="MegaScience/TextbookReasoning"):
        msd.load_dataset("textbook_random", cache_dir=tmp_path)


def _stream(folder, tmp_path, **kw):
    return msd.load_dataset("textbook", source=str(folder), split="train", streaming=True, cache_dir=tmp_path,
                            progress=False, **kw)


def test_split_by_node_and_dataloader_workers_read_every_row_once(tiny_folder, tmp_path):
    import torch.utils.data
    from datasets.distributed import split_dataset_by_node
    full = [r["question"] for r in _stream(tiny_folder, tmp_path)]
    assert len(full) == 60 and len(set(full)) == 60
    ds = _stream(tiny_folder, tmp_path)
    assert ds.num_shards >= 2
    per_rank = []
    for rank in range(2):
        part = split_dataset_by_node(ds, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(part, batch_size=None, num_workers=min(2, part.num_shards))
        per_rank.append([r["question"] for r in loader])
    assert all(per_rank) and not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == sorted(full)


def test_shuffle_columns_and_pushed_down_filters(tiny_folder, tmp_path):
    base = [r["question"] for r in _stream(tiny_folder, tmp_path)]
    a = [r["question"] for r in _stream(tiny_folder, tmp_path).shuffle(seed=3, buffer_size=16)]
    b = [r["question"] for r in _stream(tiny_folder, tmp_path).shuffle(seed=3, buffer_size=16)]
    assert a == b and a != base and sorted(a) == sorted(base)
    proj = _stream(tiny_folder, tmp_path, columns=["question", "subject"],
                   filters=[("subject", "==", "physics")])
    rows = list(proj)
    assert rows and all(set(r) == {"question", "subject"} and r["subject"] == "physics" for r in rows)
    assert len(rows) == sum(1 for r in _stream(tiny_folder, tmp_path) if r["subject"] == "physics")
    ds = msd.load_dataset("textbook", source=str(tiny_folder), split="train", cache_dir=tmp_path, progress=False,
                          columns=["subject"], filters=[("subject", "in", ["math", "biology"])])
    assert ds.column_names == ["subject"] and set(ds["subject"]) == {"math", "biology"}


def test_repo_folder_rewrite_is_byte_identical(tiny_folder, tmp_path):
    from megascience_datasets.repo_folder import configs_from_folder, write_repo_folder
    again = tmp_path / "again"
    write_repo_folder(again, configs_from_folder(tiny_folder), revision={"tag": "local", "sha": None},
                      max_shard_bytes=120_000)
    for p in sorted(tiny_folder.rglob("*")):
        if p.is_file():
            assert (again / p.relative_to(tiny_folder)).read_bytes() == p.read_bytes(), p
    import pyarrow.parquet as pq
    md = pq.ParquetFile(next((again / "data" / "textbook").glob("*.parquet"))).metadata
    assert md.row_group(0).column(0).compression == "ZSTD"


def test_streaming_and_prepared_rows_are_identical(tiny_folder, tmp_path):
    prepared = msd.load_dataset("textbook_random", source=str(tiny_folder), split="train", cache_dir=tmp_path,
                                progress=False)
    streamed = list(msd.load_dataset("textbook_random", source=str(tiny_folder), split="train", streaming=True,
                                     cache_dir=tmp_path, progress=False))
    assert streamed == prepared.to_list()
    assert prepared.features == load_catalogue()["textbook_random"].hf_features()
