"""Evaluation: (event, ruleset, open incidents) -> actions, pure."""
