"""The command line (all click code)."""
