"""What a model really is: the one identity every cache key, fingerprint, manifest and provenance step uses.

A backend computes its identity from what it loads, not from the pipeline file's strings:

    model         the model id (a Hub repo, a local path's name, a served model's pinned name)
    revision      resolved: a Hub commit sha, a weights file's sha256, a local directory's content sha256,
                  a dummy model's config hash, or for a server the pinned revision (default "served")
    dtype         the precision the weights run in, resolved ("auto" never keys anything)
    quantization  "none", "gguf-dequantized", or the checkpoint's quantization method
    tokenizer     sha256 of the tokenizer in use and of any chat template given in the pipeline
                  ("" when the revision already covers the model's own tokenizer and template)
    settings      other switches that change outputs (ignore_eos, max_seq_length, extra request fields ...)

`identify()` on each backend class computes it without loading weights (hashing files is the expensive
part, done once per file and process), so a fully cached stage never loads its model.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


class ModelIdentityError(ValueError):
    """A model whose identity cannot be established (an unpinned Hub revision offline, a missing file)."""


class ModelMismatchError(RuntimeError):
    """A server reported a different model than the one the pipeline pinned: nothing it returned is kept."""


@dataclass(frozen=True)
class ModelIdentity:
    backend: str
    model: str
    revision: str
    dtype: str = ""
    quantization: str = ""
    tokenizer: str = ""
    settings: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["settings"] = dict(self.settings)
        return d

    @property
    def digest(self) -> str:
        """16 hex digits over everything above except the backend name (the same weights served by
        transformers or vLLM are still the same model; their numerics are a documented caveat)."""
        d = self.as_dict()
        d.pop("backend")
        return sha256_text(canonical_json(d))[:16]

    def __str__(self) -> str:
        return f"{self.model}@{self.revision[:12]}"


def make_settings(**values: Any) -> tuple[tuple[str, str], ...]:
    """Sorted, string-valued settings, leaving out the ones at their neutral value (None/False/empty)."""
    return tuple(sorted((k, v if isinstance(v, str) else canonical_json(v))
                        for k, v in values.items() if v not in (None, False, "", {}, [])))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- file content hashes, memoised per process by (path, size, mtime) ---------------------------------

_FILE_HASHES: dict[tuple, str] = {}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def dir_sha256(path: str | os.PathLike, only: tuple[str, ...] | None = None) -> str:
    """sha256 over every file's relative name and content sha256 (or only the files named in `only`).
    Hidden files and folders (.cache, .git, markers) are left out."""
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or any(part.startswith(".") for part in Path(rel).parts):
            continue
        if only is not None and p.name not in only:
            continue
        h.update(f"{rel}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "chat_template.json", "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt",
                   "added_tokens.json")


@functools.lru_cache(maxsize=64)
def hub_commit(repo: str, revision: str | None, *, repo_type: str = "model") -> str:
    """The commit sha a Hub revision (branch, tag or sha) names: a 40-hex sha as given; else from the local
    Hub cache's refs; else asked of the Hub (HF_ENDPOINT). Never guesses. Remembered for the process, so
    identify() and loading the same model ask once (failures are not remembered)."""
    revision = revision or "main"
    if COMMIT_SHA.match(revision):
        return revision
    from huggingface_hub import snapshot_download
    try:
        return Path(snapshot_download(repo, repo_type=repo_type, revision=revision, local_files_only=True)).name
    except Exception:   # not in the local cache: ask the Hub
        pass
    try:
        from huggingface_hub import HfApi
        api = HfApi()
        info = (api.model_info if repo_type == "model" else api.dataset_info)(repo, revision=revision)
        if info.sha:
            return info.sha
    except Exception as exc:
        raise ModelIdentityError(
            f"{repo_type} {repo!r}: cannot resolve revision {revision!r} to a commit sha: it is not in the local "
            f"Hub cache and the Hub answered {type(exc).__name__}: {exc}. Pin `revision:` to a 40-hex commit sha "
            f"or download the model first") from None
    raise ModelIdentityError(f"{repo_type} {repo!r}: the Hub gave no commit sha for revision {revision!r}")


def identity_of(obj: Any, backend: str) -> ModelIdentity:
    """The identity of a backend object: its own `.identity`, else one built from `.model_id`/`.revision`
    (custom backends that predate identities)."""
    ident = getattr(obj, "identity", None)
    if isinstance(ident, ModelIdentity):
        return ident
    model = getattr(obj, "model_id", None)
    if not model:
        raise ModelIdentityError(f"backend {backend!r} ({type(obj).__name__}) has neither `.identity` nor "
                                 f"`.model_id`: a backend must say which model it is")
    return ModelIdentity(backend=backend, model=str(model), revision=str(getattr(obj, "revision", "") or ""))

