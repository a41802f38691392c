"""The rule language: rule files, their checks, matchers and templates."""
