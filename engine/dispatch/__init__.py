"""Dispatch: actions -> outcomes through the gates and a backend."""
