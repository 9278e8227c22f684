"""Serve local git dataset repositories over the Hub protocol with `olah` (PyPI) on loopback.

Used by the demo and by the tests: `datasets.load_dataset("<org>/<name>", cfg, revision=SHA)` then runs the
real Hub code path with HF_ENDPOINT pointed at the mirror and no internet. olah is a test extra; nothing
here is imported by the loader itself.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "megascience", "GIT_AUTHOR_EMAIL": "megascience@localhost",
           "GIT_COMMITTER_NAME": "megascience", "GIT_COMMITTER_EMAIL": "megascience@localhost",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def init_repo(root: Path, repo_id: str) -> Path:
    """An empty git repository at <root>/datasets/<org>/<name> (olah's mirrors-path layout)."""
    path = root / "datasets" / repo_id
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "commit.gpgsign", "false")
    return path


def commit_folder(repo: Path, folder: Path, message: str, tag: str | None = None) -> str:
    """Replace the repository's tree with the content of `folder`, commit, optionally tag; return the sha."""
    for p in repo.iterdir():
        if p.name != ".git":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    shutil.copytree(folder, repo, dirs_exist_ok=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    if tag:
        git(repo, "tag", tag)
    return git(repo, "rev-parse", "HEAD")


def available() -> bool:
    return shutil.which("git") is not None and shutil.which("olah-cli", path=os.path.dirname(sys.executable)
                                                                     + os.pathsep + os.environ.get("PATH", "")) is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mirror:
    """olah serving <root>/datasets/<org>/<name> git repositories at http://127.0.0.1:<port>."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.port = port or _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "Mirror":
        work = self.root / ".olah"
        work.mkdir(parents=True, exist_ok=True)
        cfg = work / "olah.toml"
        cfg.write_text(f'[basic]\nhost = "127.0.0.1"\nport = {self.port}\nrepos-path = "{work / "repos"}"\n'
                       f'mirrors-path = ["{self.root}"]\nmirror-scheme = "http"\nmirror-netloc = "127.0.0.1:{self.port}"\n'
                       f'mirror-lfs-netloc = "127.0.0.1:{self.port}"\n\n[accessibility]\noffline = true\n')
        exe = Path(sys.executable).with_name("olah-cli")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        self.log = open(work / "olah.out", "wb")
        self.proc = subprocess.Popen([str(exe), "--config", str(cfg)], cwd=work, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"olah exited with {self.proc.returncode}; see {work / 'olah.out'}")
            try:  # the index page of olah 0.5.4 fails to render; a TCP connect is the readiness signal
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"olah did not answer on {self.endpoint} within {timeout:.0f} s; see {work / 'olah.out'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
