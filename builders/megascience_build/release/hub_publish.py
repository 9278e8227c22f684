"""Publishing a release folder to a Hub dataset repository through huggingface_hub, as one tagged commit."""
from __future__ import annotations

import os
from pathlib import Path

from .arguments import ReleaseError
from .folder import RELEASE_JSON


def hub_token(token_env: str | None) -> str | None:
    if token_env is None:
        return None
    token = os.environ.get(token_env)
    if not token:
        raise ReleaseError(f"--token-env {token_env}: the environment variable {token_env} is not set or empty")
    return token


def publish(dest: Path, repo_id: str, *, endpoint: str | None, token: str | None, tag: str, message: str) -> str:
    """Create the dataset repository if needed, upload the folder as one commit (removing files of the previous
    release that this one lacks), tag that commit; return its sha."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    taken = {t.name: t.target_commit for t in api.list_repo_refs(repo_id, repo_type="dataset").tags}
    if tag in taken:   # checked before uploading: a release never leaves an untagged commit behind
        raise ReleaseError(f"tag {tag!r} already exists in {repo_id} (commit {taken[tag]}); choose a new tag")
    info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(dest), commit_message=message,
                             ignore_patterns=[".git/*", ".git", RELEASE_JSON], delete_patterns=["*"])
    sha = info.oid
    api.create_tag(repo_id, tag=tag, revision=sha, tag_message=message, repo_type="dataset")
    return sha
