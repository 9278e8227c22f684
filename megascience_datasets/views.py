"""Training views: the question/answer rows as trainers take them, with no user-written map.

    format="messages"           messages = [{"role": "user", "content": question},
                                            {"role": "assistant", "content": answer}]   (TRL: conversational)
    format="prompt_completion"  prompt = question, completion = answer                 (TRL: prompt-completion)

`question` and `answer` are replaced; every other column (id, subject, reference_answer, provenance ...)
stays. With `tokenizer=` (any object with a Hugging Face tokenizer's `__call__`, and `apply_chat_template`
for the messages view), a `num_tokens` column counts each row's tokens: the chat-templated conversation for
`messages`, prompt plus completion otherwise, for packing and token budgets. Works on Dataset, DatasetDict,
IterableDataset and IterableDatasetDict alike (lazily when streaming, so resuming with
`IterableDataset.state_dict()` keeps working).
"""
from __future__ import annotations

from typing import Any

from .errors import UsageError

FORMATS = ("messages", "prompt_completion")
NEEDED = ("question", "answer")


def _count(tokenizer, row: dict[str, Any], format: str) -> int:
    if format == "messages" and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])   # the template writes its own markers
    if format == "messages":
        return sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in row["messages"])
    return (len(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"])
            + len(tokenizer(row["completion"], add_special_tokens=False)["input_ids"]))


def _convert(row: dict[str, Any], format: str, tokenizer) -> dict[str, Any]:
    if format == "messages":
        out = {"messages": [{"role": "user", "content": row["question"]},
                            {"role": "assistant", "content": row["answer"]}]}
    else:
        out = {"prompt": row["question"], "completion": row["answer"]}
    if tokenizer is not None:
        out["num_tokens"] = _count(tokenizer, out, format)
    return out


def _columns(ds) -> list[str] | None:
    names = getattr(ds, "column_names", None)
    if isinstance(names, dict):              # a DatasetDict: every split has the same columns
        names = next(iter(names.values()), None)
    return list(names) if names is not None else None


def training_view(ds, format: str, tokenizer=None, *, config: str = "?"):
    """`ds` as the `format` view (see the module docstring)."""
    if format not in FORMATS:
        raise UsageError(f"format={format!r}: expected one of {', '.join(FORMATS)}")
    names = _columns(ds)
    if names is not None:
        missing = [c for c in NEEDED if c not in names]
        if missing:
            raise UsageError(f"configuration {config!r}: format={format!r} needs columns {list(NEEDED)}, but the "
                             f"loaded rows have {names} (do not project them away with columns=)")
    return ds.map(_convert, fn_kwargs={"format": format, "tokenizer": tokenizer}, remove_columns=list(NEEDED))
