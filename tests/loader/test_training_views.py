"""Training views (format="messages" / "prompt_completion", token counts) and resuming a streaming read."""
from __future__ import annotations

import pytest

import megascience_datasets as msd


def load(tmp_path, **kw):
    return msd.load_dataset("textbook", sample=True, split="train", cache_dir=tmp_path, progress=False, **kw)


def test_messages_view_holds_each_question_and_answer_as_chat_turns(tmp_path):
    plain = load(tmp_path)
    view = load(tmp_path, format="messages")
    assert view.column_names == ["subject", "reference_answer", "messages"]
    assert len(view) == len(plain) > 0
    for row, chat in zip(plain, view):
        assert chat["messages"] == [{"role": "user", "content": row["question"]},
                                    {"role": "assistant", "content": row["answer"]}]
        assert chat["subject"] == row["subject"]


def test_prompt_completion_view_is_the_same_streaming_or_not(tmp_path):
    table = load(tmp_path, format="prompt_completion")
    streamed = list(load(tmp_path, format="prompt_completion", streaming=True))
    assert [dict(r) for r in table] == streamed
    assert set(streamed[0]) == {"subject", "reference_answer", "prompt", "completion"}


def test_token_counts_in_a_named_tokenizer(tmp_path):
    from transformers import AutoTokenizer
    from megascience_build.backends import local_models

    tok = AutoTokenizer.from_pretrained(str(local_models.minilm_path()))
    plain = load(tmp_path)
    pc = load(tmp_path, format="prompt_completion", tokenizer=tok)
    expected = [len(tok(r["question"], add_special_tokens=False)["input_ids"])
                + len(tok(r["answer"], add_special_tokens=False)["input_ids"]) for r in plain]
    assert pc["num_tokens"] == expected and min(expected) > 5
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    chat = load(tmp_path, format="messages", tokenizer=tok)
    assert chat["num_tokens"] == [len(tok(tok.apply_chat_template(r["messages"], tokenize=False),
                                          add_special_tokens=False)["input_ids"]) for r in chat]
    assert all(c > e for c, e in zip(chat["num_tokens"], expected))     # the template's markers count too


def test_bad_view_requests_are_named(tmp_path):
    with pytest.raises(msd.UsageError, match="format='sharegpt': expected one of messages, prompt_completion"):
        load(tmp_path, format="sharegpt")
    with pytest.raises(msd.UsageError, match=r"needs columns \['question', 'answer'\]"):
        load(tmp_path, format="messages", columns=["question", "subject"])
    with pytest.raises(msd.UsageError, match="give format= too"):
        load(tmp_path, tokenizer=object())


def test_an_interrupted_streaming_run_resumes_with_exactly_the_rows_not_yet_seen(tiny_folder, tmp_path):
    def stream():
        return msd.load_dataset("textbook", source=str(tiny_folder), split="train", streaming=True,
                                cache_dir=tmp_path, progress=False, format="messages")
    everything = [r["messages"][0]["content"] for r in stream()]
    assert len(everything) == 60
    ds = stream()
    seen, state = [], None
    for i, row in enumerate(ds):
        seen.append(row["messages"][0]["content"])
        if i == 24:
            state = ds.state_dict()          # what a checkpoint stores
            break
    resumed = stream()
    resumed.load_state_dict(state)
    rest = [r["messages"][0]["content"] for r in resumed]
    assert seen + rest == everything
