"""Silences over HTTP: /api/silences (bearer token) and the dashboard's silences page (README "Silences")."""
from __future__ import annotations

from flask import Blueprint

silences = Blueprint("silences", __name__)
