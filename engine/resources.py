"""The files that ship inside the package: the default config, the rules and packs, the schemas.

In a checkout they are the top-level pagerduty.yaml, rules/ and schemas/, which
engine/shipped/ links to; in an installed wheel they are copies in the same place.
Either way importlib.resources finds them, so nothing depends on where the code sits.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped(*parts: str) -> Path:
    """A shipped file or folder, e.g. ``shipped("rules", "packs")``."""
    # pip installs packages as plain folders, so the resource is a real path (watchdog and the loaders need one).
    return Path(str(files("engine").joinpath("shipped", *parts)))


DEFAULT_CONFIG = shipped("pagerduty.yaml")
RULES = shipped("rules")
SCHEMAS = shipped("schemas")


def pack_folders(rules_dir: Path) -> dict[str, Path]:
    """Every rule pack by name: the rules folder's own ``packs/NAME`` first, then the shipped ones,
    so a team's ./rules need not copy the packs to turn one on."""
    found: dict[str, Path] = {}
    for root in (rules_dir / "packs", RULES / "packs"):
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if folder.is_dir():
                    found.setdefault(folder.name, folder)
    return found
