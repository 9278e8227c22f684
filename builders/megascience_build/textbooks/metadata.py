"""Book metadata values (the paper's 7 disciplines, academic levels) and the parser of the classifier's
answer. The parser never raises: what it cannot read comes back with `error` set."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

SUBJECTS = ("mathematics", "physics", "chemistry", "biology", "medicine", "computer science", "economics")
OTHER = "other"
LEVELS = ("primary", "secondary", "undergraduate", "graduate", "professional")
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}

# keywords that name a subject or a level, matched at word boundaries; the earliest match in the answer wins
_SUBJECT_WORDS = {
    "mathematics": r"math\w*|algebra|calculus|geometry|statistics|probability|topology|number theory",
    "physics": r"physics|mechanics|thermodynamics|electromagnetism|optics|astronomy|astrophysics",
    "chemistry": r"chemi\w*|biochemistry",
    "biology": r"biolog\w*|genetics|ecology|botany|zoology|life sciences?|cell biology",
    "medicine": r"medic\w*|clinical|pharmac\w*|physiology|anatomy|nursing|pathology|health",
    "computer science": r"computer\w*|computing|programming|software|algorithms|artificial intelligence|"
                        r"machine learning|informatics|data science",
    "economics": r"econom\w*|finance|financial|business",
    OTHER: r"other|history|literature|law|philosophy|art|music|language|linguistics|geography|religion",
}
_LEVEL_WORDS = {
    "primary": r"primary|elementary|kindergarten|grade school|children",
    "secondary": r"secondary|high school|middle school|a-level|gcse|k-12|pre-university",
    "undergraduate": r"undergraduate|university|college|bachelor\w*",
    "graduate": r"graduate|postgraduate|master\w*|ph\.?d|doctoral",
    "professional": r"professionals?|research\w*|practitioners?|experts?",
}
_SUBJECT_RE = {k: re.compile(rf"\b(?:{v})\b", re.I) for k, v in _SUBJECT_WORDS.items()}
_LEVEL_RE = {k: re.compile(rf"\b(?:{v})\b", re.I) for k, v in _LEVEL_WORDS.items()}
_FIELD = re.compile(r"^[\s>*_`#-]*(?:academic\s+)?(subject|discipline|field|level)\**\s*[:=\-]\s*(.+)$", re.I | re.M)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.S)


@dataclass(frozen=True)
class BookMetadata:
    subject: str | None       # one of SUBJECTS, OTHER, or None
    level: str | None         # one of LEVELS or None
    error: str | None = None  # no_answer, no_subject, no_level, unknown_subject, unknown_level,
                              # ambiguous_subject, ambiguous_level

    @property
    def ok(self) -> bool:
        return self.error is None


def _all_matches(value: str, patterns: dict[str, re.Pattern]) -> set[str]:
    return {key for key, pattern in patterns.items() if pattern.search(value)}


def _earliest(value: str, patterns: dict[str, re.Pattern]) -> str | None:
    best, best_pos = None, None
    for key, pattern in patterns.items():
        m = pattern.search(value)
        if m and (best_pos is None or m.start() < best_pos):
            best, best_pos = key, m.start()
    return best


def normalise_subject(value) -> str | None:
    """'Computer Science & AI' -> 'computer science'; a non-science subject -> 'other'; nothing -> None."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip().lower()
    return value if value in SUBJECTS else _earliest(value, _SUBJECT_RE)


def normalise_level(value) -> str | None:
    if value is None or not str(value).strip():
        return None
    value = str(value).strip().lower()
    return value if value in LEVELS else _earliest(value, _LEVEL_RE)


def parse_book_metadata(text) -> BookMetadata:
    """Read `Subject: ...` / `Level: ...` lines (or a JSON object with those keys) from a model answer."""
    try:
        return _parse(text)
    except Exception:          # the contract: a parser of model output never raises
        return BookMetadata(None, None, "no_answer")


def _parse(text) -> BookMetadata:
    if not isinstance(text, str) or not text.strip():
        return BookMetadata(None, None, "no_answer")
    fields: dict[str, str] = {}
    for m in _FIELD.finditer(text):
        key = "level" if m.group(1).lower() == "level" else "subject"
        fields.setdefault(key, m.group(2).strip().strip("*`\"'").strip())
    if not fields:
        for blob in _JSON_OBJECT.findall(text):
            try:
                obj = json.loads(blob)
            except ValueError:
                continue
            if isinstance(obj, dict):
                lowered = {str(k).lower(): v for k, v in obj.items()}
                for key in ("subject", "level"):
                    if lowered.get(key) is not None:
                        fields.setdefault(key, str(lowered[key]))
                if fields:
                    break
    if "subject" not in fields:
        return BookMetadata(None, normalise_level(fields.get("level")), "no_subject")
    # an answer naming several disciplines or levels (often the option list echoed back) is not an answer
    if len(_all_matches(fields["subject"], _SUBJECT_RE) - {OTHER}) > 1:
        return BookMetadata(None, None, "ambiguous_subject")
    if "level" in fields and len(_all_matches(fields["level"], _LEVEL_RE)) > 1:
        return BookMetadata(None, None, "ambiguous_level")
    subject = normalise_subject(fields["subject"])
    level = normalise_level(fields.get("level"))
    if subject is None:
        return BookMetadata(None, level, "unknown_subject")
    if "level" not in fields:
        return BookMetadata(subject, None, "no_level")
    if level is None:
        return BookMetadata(subject, None, "unknown_level")
    return BookMetadata(subject, level)
