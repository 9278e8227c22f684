"""Fixtures of the release tests: three small pipelines built once per session through the real engine with
scripted models (textbook, textbook_difficulty_distill, natural_reasoning), released with --git and a tag into
an olah mirror root, and served by olah on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from release_lib import REPO_ID, TAG, release_cli, work_args


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    from release_fixtures import build_all

    root = tmp_path_factory.mktemp("build")
    return {"root": root, "works": build_all(root)}


@pytest.fixture(scope="session")
def released(built, tmp_path_factory):
    """`megascience-build release --git --tag v1.0` into <mirror root>/datasets/acme/megascience."""
    mirror_root = tmp_path_factory.mktemp("mirror")
    dest = mirror_root / "datasets" / REPO_ID
    out = release_cli(*work_args(built["works"]), "--config", "textbook", "--config", "textbook_difficulty_distill",
                      "--config", "natural_reasoning", "--config", "natural_reasoning_dc_difficulty",
                      "--config", "natural_reasoning_dc_length", "--config", "natural_reasoning_dc_random",
                      "--dest", str(dest), "--git", "--tag", TAG, "--message", "MegaScience test release v1.0")
    assert out.returncode == 0, out.stderr
    record = json.loads((dest / "RELEASE.json").read_text())
    return {"dest": dest, "mirror_root": mirror_root, "record": record, "sha": record["sha"], "stdout": out.stdout}


@pytest.fixture(scope="session")
def mirror(released):
    from megascience_datasets.hubmirror import Mirror

    with Mirror(released["mirror_root"]) as m:
        yield m


@pytest.fixture
def client(tmp_path, mirror):
    """run(code, **env) -> the JSON of the code's last printed line; a subprocess so that HF_ENDPOINT/HF_HOME
    are set before huggingface_hub and datasets are imported."""
    def run(code: str, cwd: Path | None = None, **extra_env) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MEGASCIENCE_"))}
        env.update({"HF_ENDPOINT": mirror.endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
                    "HF_HUB_ETAG_TIMEOUT": "30", "HF_HUB_DOWNLOAD_TIMEOUT": "30", **extra_env})
        prelude = "import json, datasets, megascience_datasets as msd\ndatasets.disable_progress_bars()\n"
        out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env, capture_output=True,
                             text=True, timeout=300, cwd=cwd or tmp_path)
        assert out.returncode == 0, out.stderr[-4000:]
        return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    return run
