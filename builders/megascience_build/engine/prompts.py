"""Prompt templates: text files in megascience_build/prompts/ (or any path), with their sha256.

File format: optional sections introduced by a line `--- system` or `--- user`; with no marker the whole
file is the user message. Placeholders are `{{name}}`; nothing else is special, so LaTeX braces and `$` are
safe. Rendering with a missing or unknown placeholder is an error naming the template and the field.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SECTION = re.compile(r"^--- (system|user)\s*$", re.M)


class PromptError(ValueError):
    pass


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    system: str | None
    user: str
    sha256: str

    @property
    def fields(self) -> set[str]:
        return set(_PLACEHOLDER.findall((self.system or "") + self.user))

    def render(self, **values: str) -> tuple[dict, ...]:
        """Chat messages with the placeholders filled in."""
        missing = self.fields - set(values)
        if missing:
            raise PromptError(f"prompt {self.name!r} needs field(s) {sorted(missing)}")

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)

        msgs = []
        if self.system:
            msgs.append({"role": "system", "content": fill(self.system)})
        msgs.append({"role": "user", "content": fill(self.user)})
        return tuple(msgs)


def load_prompt(name_or_path: str | Path) -> PromptTemplate:
    path = Path(name_or_path)
    if not path.is_absolute() and not path.exists():
        candidate = PROMPTS_DIR / path
        if not candidate.suffix:
            candidate = candidate.with_suffix(".txt")
        path = candidate
    if not path.is_file():
        raise PromptError(f"prompt template {str(name_or_path)!r} not found (looked at {path})")
    raw = path.read_text(encoding="utf-8")
    sha = hashlib.sha256(raw.encode("utf-8")).hexdigest()
    parts = _SECTION.split(raw)
    system, user = None, None
    if len(parts) == 1:
        user = raw.strip()
    else:
        if parts[0].strip():
            raise PromptError(f"prompt {path}: text before the first '--- system' / '--- user' line")
        for role, body in zip(parts[1::2], parts[2::2]):
            if role == "system":
                system = body.strip()
            else:
                user = body.strip()
    if not user:
        raise PromptError(f"prompt {path}: no user message")
    return PromptTemplate(name=path.stem, system=system, user=user, sha256=sha)
