"""Fixtures of the loader tests: fixture repositories served by olah on loopback.

Client code runs in subprocesses so that HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE are set before
huggingface_hub and datasets are imported (both read them at import time).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from megascience_datasets.hubmirror import Mirror, commit_folder, init_repo
from megascience_datasets.repo_folder import write_repo_folder
from megascience_datasets.testing import fixture_table

RELEASE = "acme/megascience"
UPSTREAM = "MegaScience/MegaScience"
TEXTBOOK_UPSTREAM = "MegaScience/TextbookReasoning"


def _release_folder(dest: Path, tag: str, n: int) -> Path:
    write_repo_folder(dest, {
        "textbook": [fixture_table(n, "textbook", seed=1, tag=f"{tag}-textbook-")],
        "textbook_random": [fixture_table(n // 3, "textbook", seed=2, tag=f"{tag}-random-", extra_columns=True)],
    }, revision={"tag": tag, "sha": None}, max_shard_bytes=120_000)
    return dest


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """olah serving two git dataset repositories:
    acme/megascience          release layout, tags v1.0 and v1.1 (different rows), main = v1.1
    MegaScience/MegaScience   upstream layout (data/train-*.parquet, no manifest), two commits on main
    MegaScience/TextbookReasoning  upstream layout, tags fx1 (2 x 150 rows) and fx2 (2 x 160 rows), row groups of 40
    """
    root = tmp_path_factory.mktemp("mirror")
    work = tmp_path_factory.mktemp("folders")
    repo = init_repo(root, RELEASE)
    shas = {}
    for tag, n in (("v1.0", 240), ("v1.1", 300)):
        shas[tag] = commit_folder(repo, _release_folder(work / tag, tag, n), f"release {tag}", tag=tag)
    up = init_repo(root, UPSTREAM)
    up_shas = []
    for k in range(2):
        folder = work / f"upstream{k}"
        (folder / "data").mkdir(parents=True)
        import pyarrow.parquet as pq
        for i in range(2):
            pq.write_table(fixture_table(60, "megascience", seed=10 + k * 2 + i, tag=f"up{k}-{i}-"),
                           folder / "data" / f"train-{i:05d}-of-00002.parquet", compression="zstd")
        up_shas.append(commit_folder(up, folder, f"upstream commit {k}"))
    tb = init_repo(root, TEXTBOOK_UPSTREAM)
    tb_shas = {}
    for k, tag in enumerate(("fx1", "fx2")):
        folder = work / f"textbook-{tag}"
        (folder / "data").mkdir(parents=True)
        for i in range(2):
            pq.write_table(fixture_table(150 + 10 * k, "textbook", seed=40 + 2 * k + i, tag=f"{tag}-{i}-"),
                           folder / "data" / f"train-{i:05d}-of-00002.parquet", compression="zstd",
                           row_group_size=40)
        tb_shas[tag] = commit_folder(tb, folder, f"textbook fixture {tag}", tag=tag)
    with Mirror(root) as mirror:
        yield {"endpoint": mirror.endpoint, "root": root, "shas": shas, "upstream_shas": up_shas,
               "release_repo": repo, "upstream_repo": up, "textbook_shas": tb_shas, "textbook_repo": tb}


@pytest.fixture
def client(tmp_path, hub):
    """run(code, offline=False, **env) -> JSON printed by the code's last line. One HF_HOME per test."""
    home = tmp_path / "hf"

    def run(code: str, offline: bool = False, expect_ok: bool = True, **extra_env) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MEGASCIENCE_"))}
        env.update({"HF_ENDPOINT": hub["endpoint"], "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1",
                    "HF_HUB_ETAG_TIMEOUT": "30", "HF_HUB_DOWNLOAD_TIMEOUT": "30"})
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
        env.update(extra_env)
        prelude = ("import json, datasets, megascience_datasets as msd\n"
                   "datasets.disable_progress_bars()\n"
                   "def err(fn):\n"
                   "    try:\n        fn()\n    except Exception as e:\n        return [type(e).__name__, str(e)]\n"
                   "    return None\n")
        out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env, capture_output=True,
                             text=True, timeout=300, cwd=tmp_path)
        if expect_ok and out.returncode != 0:
            raise AssertionError(f"client failed ({out.returncode}):\n{out.stderr[-4000:]}")
        lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else {"returncode": out.returncode, "stderr": out.stderr}

    run.home = home
    return run


@pytest.fixture
def commit_to(hub):
    """Commit a folder to one of the served repositories (tests that need a new revision)."""
    def do(repo: Path, folder: Path, message: str, tag: str | None = None) -> str:
        return commit_folder(repo, folder, message, tag=tag)
    return do


@pytest.fixture
def tiny_folder(tmp_path):
    """A small valid release folder on disk (no Hub)."""
    return _release_folder(tmp_path / "megascience", "local", 60)
