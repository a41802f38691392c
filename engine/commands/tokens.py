"""`pagerules token add|revoke|list`: named API tokens, one per person (README "People and tokens")."""
from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
