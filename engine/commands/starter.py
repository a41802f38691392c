"""`pagerules init`: a starter setup a team can edit, made from what ships with pagerules."""
from __future__ import annotations

import shutil
from pathlib import Path

from engine import resources
from engine.errors import ConfigError


def starter_config(shipped: str) -> str:
    """The shipped pagerduty.yaml with every setting commented out, so the defaults stay in force
    until someone chooses otherwise, and each line still says what it does."""
    lines = []
    for line in shipped.splitlines():
        lines.append(line if not line.strip() or line.lstrip().startswith("#") else f"# {line}")
    return "\n".join(lines) + "\n"


def starter_files() -> dict[Path, Path | str]:
    """Target path (relative) -> shipped file to copy, or text to write."""
    files: dict[Path, Path | str] = {
        Path("pagerduty.yaml"): starter_config(resources.DEFAULT_CONFIG.read_text(encoding="utf-8")),
        Path("examples/events.jsonl"): resources.shipped("events.jsonl"),
    }
    for folder in (resources.RULES, resources.RULES / "tests"):
        for source in sorted(folder.glob("*.yaml")):
            files[source.relative_to(resources.RULES.parent)] = source
    return files


def write_starter(directory: Path, force: bool = False) -> list[Path]:
    """Write the starter files into ``directory``; refuse, naming them, if any exists and not ``force``."""
    files = {directory / target: source for target, source in starter_files().items()}
    existing = sorted(str(path) for path in files if path.exists())
    if existing and not force:
        raise ConfigError(f"not overwriting {', '.join(existing)} (use --force to replace them)")
    for path, source in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            shutil.copyfile(source, path)
        else:
            path.write_text(source, encoding="utf-8")
    return list(files)
