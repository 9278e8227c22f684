"""TRL's SFTTrainer takes a streaming derived configuration in the messages view as it comes (no user map):
a few optimiser steps of a tiny random-weight Llama on textbook_random derived from a fixture parent."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_sft_trainer_runs_on_streaming_derived_messages(tmp_path):
    trl = pytest.importorskip("trl")
    import torch
    import transformers
    import megascience_datasets as msd
    from megascience_build.backends import local_models
    from megascience_datasets.repo_folder import write_repo_folder
    from megascience_datasets.testing import fixture_table

    write_repo_folder(tmp_path / "rel", {"textbook": [fixture_table(120, "textbook", seed=5)]},
                      revision={"tag": "t", "sha": None})
    ds = msd.load_dataset("textbook_random", parent_source=str(tmp_path / "rel"), derive={"n": 40}, split="train",
                          streaming=True, format="messages", cache_dir=tmp_path / "c", progress=False)
    tok = transformers.AutoTokenizer.from_pretrained(str(local_models.minilm_path()))
    tok.chat_template = ("{% for m in messages %}{{ '<|' + m['role'] + '|> ' + m['content'] + ' [SEP] ' }}"
                         "{% endfor %}")
    tok.eos_token = "[SEP]"
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id))
    args = trl.SFTConfig(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=2,
                         max_length=64, learning_rate=1e-3, report_to=[], logging_steps=1, save_strategy="no",
                         use_cpu=True, dataloader_num_workers=0)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    result = trainer.train()
    assert result.global_step == 3
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 3 and all(x == x and x > 0 for x in losses)      # finite, positive
