"""vLLM in-process (GPU): one `vllm.LLM`, every request of a call handed to `LLM.generate` at once so vLLM's
scheduler does the batching. Shards in flight (backends/shared_stream.py) that wait while a call runs are
handed over together as the next call (`merges_calls`).

Prompts are chat-templated and tokenized here (no second BOS) and passed as token ids. Each request gets
its own SamplingParams with seed = sampling.seed + sample_index (vLLM's per-request seed), so the k samples
of one prompt differ and are reproducible. `vllm` is imported only when this backend is built.
"""
from __future__ import annotations

import logging
from typing import Sequence

from .base import GenerationRequest, GenerationResult
from . import local_models
from .identity import ModelIdentity, make_settings, sha256_text

log = logging.getLogger(__name__)

_FINISH = {"stop": "stop", "length": "length"}


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "the 'vllm' backend needs the vLLM package, which is not installed: "
            "pip install 'megascience-datasets[build,vllm]' on a CUDA machine (vLLM pins its own torch); "
            "or use backend 'transformers', or backend 'openai' pointed at a running vLLM server") from exc
    return vllm


class VLLMBackend:
    merges_calls = True   # one call for every shard waiting: vLLM's scheduler batches them as one queue

    def __init__(self, model: str, revision: str | None = None, *, tensor_parallel_size: int = 1,
                 dtype: str = "auto", gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 dummy: bool = False, seed: int = 0, enforce_eager: bool = False, trust_remote_code: bool = False,
                 chat_template: str | None = None, engine_args: dict | None = None):
        self._vllm = _import_vllm()
        self.identity = self.identify(model, revision, dtype=dtype, dummy=dummy, seed=seed,
                                      chat_template=chat_template, engine_args=engine_args)
        self.model_id, self.revision = self.identity.model, self.identity.revision
        weights = local_models.resolve_weights(model, revision)
        # vLLM's own GGUF support is partial: load_source() gives it the dequantised HF directory
        source, load_revision = weights.load_source(), weights.load_revision
        kwargs = dict(model=source, revision=load_revision, tensor_parallel_size=int(tensor_parallel_size),
                      dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, seed=seed,
                      enforce_eager=enforce_eager, trust_remote_code=trust_remote_code)
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        if dummy:
            kwargs["load_format"] = "dummy"
        kwargs.update(engine_args or {})
        self.llm = self._vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        if chat_template:
            self.tokenizer.chat_template = chat_template
        try:
            self.context_length = int(max_model_len or self.llm.llm_engine.model_config.max_model_len)
        except (AttributeError, TypeError):  # a vLLM version without that attribute: vLLM itself will check
            self.context_length = None

    @classmethod
    def identify(cls, model: str, revision: str | None = None, *, dtype: str = "auto", dummy: bool = False,
                 seed: int = 0, chat_template: str | None = None, engine_args: dict | None = None, **_runtime
                 ) -> ModelIdentity:
        """vLLM's "auto" dtype is the checkpoint's own (bf16 for the paper's models); it stays "auto" here
        unless pinned. `engine_args` enter the identity (quantization, kv-cache dtype ... change outputs)."""
        weights = local_models.resolve_weights(model, revision)
        args = dict(engine_args or {})
        return ModelIdentity("vllm", weights.model_id, weights.revision, str(dtype),
                             str(args.pop("quantization", weights.quantization)),
                             sha256_text(chat_template) if chat_template else "",
                             make_settings(dummy_seed=seed if dummy else None, engine_args=args or None))

    def sampling_params(self, req: GenerationRequest):
        s = req.sampling
        return self._vllm.SamplingParams(n=1, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                                         seed=s.seed + req.sample_index, stop=list(s.stop) or None)

    def encode_prompt(self, messages) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        prompts, params, positions = [], [], []
        for i, req in enumerate(requests):
            try:
                ids = self.encode_prompt(req.messages)
            except Exception as exc:
                results[i] = GenerationResult("", "error", error=f"chat template failed: {exc}")
                continue
            if self.context_length and len(ids) + req.sampling.max_tokens > self.context_length:
                results[i] = GenerationResult("", "error", prompt_tokens=len(ids), error=(
                    f"prompt of {len(ids)} tokens + max_tokens {req.sampling.max_tokens} exceeds the "
                    f"context length {self.context_length} of {self.model_id}"))
                continue
            prompts.append({"prompt_token_ids": ids})
            params.append(self.sampling_params(req))
            positions.append(i)
        if prompts:
            try:
                outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
            except Exception as exc:  # one failure must not take the caller down; every request reports it
                log.exception("vLLM generate failed for %d requests", len(prompts))
                outputs = [exc] * len(prompts)
            if len(outputs) != len(prompts):
                outputs = [RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")] * len(prompts)
            for i, prompt, out in zip(positions, prompts, outputs):
                results[i] = self._result(out, len(prompt["prompt_token_ids"]))
        return results  # type: ignore[return-value]

    @staticmethod
    def _result(out, prompt_tokens: int) -> GenerationResult:
        if isinstance(out, Exception):
            return GenerationResult("", "error", prompt_tokens=prompt_tokens, error=f"{type(out).__name__}: {out}")
        completion = out.outputs[0]
        finish = _FINISH.get(completion.finish_reason)
        tokens = len(completion.token_ids or ())
        if finish is None:
            return GenerationResult("", "error", prompt_tokens, tokens,
                                    error=f"vLLM finish_reason {completion.finish_reason!r}")
        return GenerationResult(completion.text, finish, prompt_tokens, tokens)

    def close(self) -> None:
        self.llm = None
