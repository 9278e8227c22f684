"""The `megascience` command: every subcommand, its output and its exit codes; the demo; spelling 2."""
from __future__ import annotations

import json
import socket
import os
import subprocess
import sys

import pytest

from megascience_datasets.catalogue import load_catalogue
from megascience_datasets.cli import main

MEGASCIENCE = [sys.executable, "-m", "megascience_datasets.cli"]


def test_list_and_info(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["configuration", "group", "rows", "size", "license", "source"]
    for e in load_catalogue():
        assert f"\n{e.name} " in out
    assert "651,840" in out and "MegaScience/TextbookReasoning@c172938626fe" in out
    assert main(["info", "textbook_random"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["derived"] == {"parent": "textbook", "rule": "select_random",
                               "parameters": {"n": 297600, "n_from": "textbook_difficulty"}, "seed": 0}


@pytest.mark.parametrize("argv", [["info", "nope"], ["cite", "nope", "--sample"], ["card", "../x"],
                                  ["download", "textbook", "--sample", "--revision", "../x", "--dir", "d"]])
def test_usage_errors_exit_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_help_everywhere():
    for sub in ([], ["list"], ["info"], ["download"], ["lock"], ["verify"], ["cite"], ["card"]):
        out = subprocess.run(MEGASCIENCE + sub + ["--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "usage: megascience" in out.stdout and "exit codes" in out.stdout


def test_download_verify_lock_cite_card(tmp_path, capsys):
    d = tmp_path / "megascience"
    assert main(["download", "textbook", "scp116k", "--sample", "--dir", str(d), "--cache-dir",
                 str(tmp_path / "c")]) == 0
    assert (d / "README.md").exists() and (d / "manifest.json").exists()
    assert sorted(p.name for p in (d / "data").iterdir()) == ["scp116k", "textbook"]
    readme = (d / "README.md").read_text()
    assert readme.index("config_name: textbook") < readme.index("config_name: scp116k")
    lock = json.loads((d / "megascience.lock.json").read_text())
    assert set(lock["configs"]) == {"textbook", "scp116k"}
    assert main(["verify", "--dir", str(d)]) == 0
    assert main(["verify", "--dir", str(d), "--against", str(d / "manifest.json")]) == 0
    shard = next((d / "data" / "textbook").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10])
    capsys.readouterr()
    assert main(["verify", "--dir", str(d)]) == 1
    assert "truncated" in capsys.readouterr().err
    assert main(["lock", "textbook", "--sample", "-o", str(tmp_path / "l.json"), "--cache-dir",
                 str(tmp_path / "c")]) == 0
    assert main(["verify", "--lock", str(tmp_path / "l.json"), "--cache-dir", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["cite", "textbook", "--sample", "--cache-dir", str(tmp_path / "c")]) == 0
    cite = capsys.readouterr().out
    assert "@article{fan2025megascience" in cite and "configuration `textbook`, revision " in cite
    assert main(["card", "textbook"]) == 0
    assert "config_name: textbook" in capsys.readouterr().out


def test_offline_uncached_real_data_is_an_error_never_the_sample(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HF_")}, "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run(MEGASCIENCE + ["download", "textbook", "--dir", str(tmp_path / "d")], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 3
    assert "HF_HUB_OFFLINE" in out.stderr and "'c172938626fef7f68c979f5858ab8beb7adef5bf'" in out.stderr
    assert not (tmp_path / "d").exists()


def test_plain_datasets_beside_a_folder_named_megascience(tiny_folder, tmp_path, monkeypatch):
    import datasets
    monkeypatch.chdir(tiny_folder.parent)
    assert datasets.get_dataset_config_names("megascience") == ["textbook", "textbook_random"]
    ds = datasets.load_dataset("megascience", "textbook_random", split="train", cache_dir=str(tmp_path / "c"))
    assert ds.column_names == list(load_catalogue()["textbook_random"].features)
    assert len(ds) == 20


def test_demo_runs_all_three_spellings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HOME"] = str(tmp_path / "hf")
    out = subprocess.run([sys.executable, "-m", "megascience_datasets.demo"], env=env, capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "== 3. datasets.load_dataset('megascience-sample/megascience'" in out.stdout
    assert "All three spellings returned the same rows." in out.stdout


def test_import_pulls_in_neither_torch_nor_the_build_package():
    code = ("import sys, megascience_datasets, megascience_datasets.cli, megascience_datasets.builder; "
            "print(sorted(m for m in ('torch', 'megascience_build') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_cite_pinned_sha_when_the_hub_is_unreachable(monkeypatch, capsys):
    from huggingface_hub import constants
    with socket.socket() as s:                      # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert main(["cite", "textbook"]) == 0
    out = capsys.readouterr()
    assert "c172938626fef7f68c979f5858ab8beb7adef5bf" in out.out and "without checking" in out.err
    # an unpinned configuration cannot be cited offline: the error says why
    assert main(["cite", "megascience"]) == 3
