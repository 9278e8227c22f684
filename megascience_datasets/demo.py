"""`python -m megascience_datasets.demo`: the catalogue, then one configuration through all three spellings,
on the embedded sample (no network needed).

1. megascience_datasets.load_dataset(cfg, sample=True)
2. datasets.load_dataset("megascience", cfg) run beside a folder named megascience/ (a copy of the sample)
3. datasets.load_dataset("<org>/megascience", cfg, revision=SHA) against a Hub: here a local olah mirror
   serving the sample as a git repository, when olah and git are installed; otherwise a printed note.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIG = "textbook"


def _first(ds) -> str:
    row = ds[0]
    return f"{len(ds)} rows; first question: {row['question'][:70]!r}"


def main(config: str = CONFIG) -> None:
    import datasets

    from .cli import cmd_list
    from .resolve import sample_dir
    from . import load_dataset

    datasets.disable_progress_bars()
    print("== the catalogue ==")
    cmd_list(None)
    print(f"\n== 1. megascience_datasets.load_dataset({config!r}, sample=True) ==")
    ds1 = load_dataset(config, sample=True, split="train", progress=False)
    print(_first(ds1))
    with tempfile.TemporaryDirectory(prefix="megascience-demo-") as tmp:
        tmp = Path(tmp)
        shutil.copytree(sample_dir(), tmp / "megascience")
        print(f"\n== 2. datasets.load_dataset('megascience', {config!r}) in {tmp} ==")
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            ds2 = datasets.load_dataset("megascience", config, split="train",
                                        cache_dir=str(tmp / "cache"))
        finally:
            os.chdir(cwd)
        print(_first(ds2))
        print(f"\n== 3. datasets.load_dataset('megascience-sample/megascience', {config!r}, revision=SHA) ==")
        from .hubmirror import Mirror, available, commit_folder, init_repo
        if not available():
            print("skipped: olah (the `test` extra) or git is not installed; with a published release run "
                  "datasets.load_dataset('<org>/megascience', cfg, revision='<sha>')")
            return
        root = tmp / "mirror"
        repo = init_repo(root, "megascience-sample/megascience")
        sha = commit_folder(repo, sample_dir(), "sample", tag="sample-v1")
        with Mirror(root) as mirror:
            code = ("import datasets; datasets.disable_progress_bars(); "
                    f"ds = datasets.load_dataset('megascience-sample/megascience', {config!r}, revision={sha!r}, "
                    "split='train'); print(len(ds), 'rows; first question:', repr(ds[0]['question'][:70]))")
            env = {**os.environ, "HF_ENDPOINT": mirror.endpoint, "HF_HOME": str(tmp / "hf"),
                   "HF_HUB_DISABLE_TELEMETRY": "1"}
            env.pop("HF_HUB_OFFLINE", None)
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"spelling 3 failed:\n{out.stderr[-2000:]}")
            print(f"(olah at {mirror.endpoint}, commit {sha})")
            print(out.stdout.strip())
    print("\nAll three spellings returned the same rows." if len(ds1) == len(ds2) else "MISMATCH")


if __name__ == "__main__":
    main(*sys.argv[1:2])
