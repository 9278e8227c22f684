"""The seven disciplines of TextbookReasoning and their spellings: extract_qa picks a prompt per discipline,
finalize writes the released subject."""
from __future__ import annotations

from typing import Any


# The seven disciplines of the paper and the spellings accepted for each in the `subject` column.
DISCIPLINES = ("mathematics", "physics", "chemistry", "biology", "medicine", "computer_science", "economics")
_SUBJECT_ALIASES = {
    "math": "mathematics", "maths": "mathematics", "mathematics": "mathematics",
    "physics": "physics", "chemistry": "chemistry", "biology": "biology", "medicine": "medicine",
    "cs": "computer_science", "computer science": "computer_science", "computer_science": "computer_science",
    "computer-science": "computer_science", "economics": "economics",
}


def discipline_of(subject: Any) -> str | None:
    """The discipline key (prompt file suffix) for a subject value, or None if it is not one of the seven."""
    if not isinstance(subject, str):
        return None
    return _SUBJECT_ALIASES.get(" ".join(subject.strip().lower().split()))
