"""The web app: HTTP API, webhook intake and dashboard."""
