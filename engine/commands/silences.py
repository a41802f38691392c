"""`pagerules silence add|list|expire`: mute triggers for a while (README "Silences")."""
from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
