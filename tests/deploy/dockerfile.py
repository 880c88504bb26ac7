"""A small reader of our Dockerfile: its instructions per stage, continuation lines joined."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    """One FROM ... stage: its base image, alias and (instruction, arguments) list."""

    image: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        """Arguments of every occurrence of an instruction, in order."""
        return [args for name, args in self.instructions if name == instruction]


def stages(text: str | None = None) -> list[Stage]:
    """Parse the Dockerfile into stages (comments dropped, backslash continuations joined)."""
    source = DOCKERFILE.read_text(encoding="utf-8") if text is None else text
    logical: list[str] = []
    pending = ""
    for raw in source.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    result: list[Stage] = []
    for line in logical:
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.IGNORECASE)
            assert match, line
            result.append(Stage(match.group(1), match.group(2)))
        elif result:
            result[-1].instructions.append((name, args.strip()))
    return result


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails for shell form."""
    value = json.loads(args)
    assert isinstance(value, list)
    assert all(isinstance(item, str) for item in value)
    return value
