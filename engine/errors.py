"""Error types the CLI turns into messages and exit codes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config or rule file, printed as ``FILE:LINE: rule ID: message``."""

    filename: str
    line: int
    message: str
    rule: str | None = None
    warning: bool = False
    path: tuple[Any, ...] = field(default=(), compare=False, repr=False)  # inside the document

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}: "
        rule = f"rule {self.rule}: " if self.rule else ""
        kind = "warning: " if self.warning else ""
        return f"{where}{kind}{rule}{self.message}"


class PageRulesError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code = 1


class ConfigError(PageRulesError):
    """Bad configuration or usage: the CLI exits 2."""

    exit_code = 2


class InvalidFiles(ConfigError):
    """Config or rule files that do not validate; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
