"""Model identities resolved from what would be loaded (no weights are loaded here): weights bytes, dtype,
tokenizer and chat template, pinned revisions, Hub commits from the local Hub cache."""
from __future__ import annotations

import shutil

import pytest

from megascience_build.backends import identify, local_models
from megascience_build.backends.embeddings import SentenceTransformerEmbedder
from megascience_build.backends.identity import ModelIdentityError, dir_sha256, hub_commit
from megascience_build.backends.transformers_backend import TransformersBackend

ident = TransformersBackend.identify


@pytest.fixture(scope="module")
def gguf_copy(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "model.gguf"
    shutil.copyfile(local_models.smollm2_gguf_path(), path)
    return path


def test_gguf_identity_is_the_file_content(gguf_copy):
    packaged = ident("smollm2", device="cpu")
    assert packaged.model == local_models.SMOLLM2_MODEL_ID and packaged.quantization == "gguf-dequantized"
    assert packaged.revision == local_models.file_sha256(local_models.smollm2_gguf_path())
    copy = ident(str(gguf_copy), device="cpu")
    assert copy.revision == packaged.revision            # same bytes, same revision
    with open(gguf_copy, "ab") as fh:                    # weights swapped under the same file name
        fh.write(b"\0" * 32)
    swapped = ident(str(gguf_copy), device="cpu")
    assert swapped.model == copy.model and swapped.revision != copy.revision and swapped.digest != copy.digest


def test_dtype_template_tokenizer_and_switches_enter_the_identity():
    base = ident("smollm2", device="cpu")
    assert base.dtype == "float32" and base == ident("smollm2", device="cpu", dtype="float32")
    others = [ident("smollm2", device="cpu", dtype="bfloat16"),
              ident("smollm2", device="cpu", chat_template="{{ messages[0].content }}"),
              ident("smollm2", device="cpu", tokenizer=str(local_models.minilm_path())),
              ident("smollm2", device="cpu", ignore_eos=True)]
    assert len({base.digest, *(o.digest for o in others)}) == 5
    # batch settings do not change what the model answers, so they do not enter it
    assert ident("smollm2", device="cpu", max_batch_size=2, max_batch_tokens=999) == base
    assert identify({"backend": "transformers", "model": "smollm2", "options": {"device": "cpu"}}) == base


def test_pinned_revisions_are_checked_against_the_content():
    sha = ident("smollm2", device="cpu").revision
    assert ident("smollm2", sha[:12], device="cpu").revision == sha
    with pytest.raises(ValueError, match="does not match the content sha256"):
        ident("smollm2", "main", device="cpu")


def test_local_directory_revision_is_its_content(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(local_models.minilm_path(), model)
    before = SentenceTransformerEmbedder.identify(str(model))
    assert before.revision == dir_sha256(model) and len(before.revision) == 64
    (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes()[:-1] + b"\1")
    after = SentenceTransformerEmbedder.identify(str(model))
    assert after.revision != before.revision and after.tokenizer == before.tokenizer


def test_embedder_identity_names_the_weights_and_truncation():
    minilm = SentenceTransformerEmbedder.identify("minilm")
    assert minilm.revision == local_models.file_sha256(local_models.minilm_path() / "model.safetensors")
    assert dict(minilm.settings)["max_seq_length"] == "256"
    assert SentenceTransformerEmbedder.identify("minilm", max_seq_length=128).digest != minilm.digest


def test_hub_revisions_resolve_to_commits_from_the_local_cache_or_fail_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text('{"quantization_config": {"quant_method": "awq"}}')
    assert hub_commit("org/model", None) == commit
    assert hub_commit("org/model", commit) == commit
    hub = ident("org/model", device="cpu")
    assert (hub.revision, hub.quantization) == (commit, "awq")
    with pytest.raises(ModelIdentityError, match="cannot resolve revision 'main'.*Pin `revision:`"):
        hub_commit("org/absent", "main")
