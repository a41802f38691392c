"""Dashboard sign-in safety: the Secure cookie flag, a cross-origin check, and a login rate limit.

The Secure flag is set per request, when the request came over TLS or a proxy
in front says it did (``X-Forwarded-Proto: https`` or ``Forwarded: proto=https``).
Trusting that header without configuration is safe in this one use: it can only
add Secure, and a client that lies gets a cookie its own browser keeps to https.
"""
from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface

LOGIN_FAILURES = 5          # wrong tokens per client address ...
LOGIN_WINDOW_SECONDS = 60.0  # ... within this long, then 429 until the oldest one ages out
MAX_TRACKED_CLIENTS = 10_000  # bounds memory when many addresses guess


def is_https(request: Request) -> bool:
    """TLS here, or a proxy that terminated it says so."""
    if request.is_secure:
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    standard = request.headers.get("Forwarded", "").split(",")[0].lower().replace(" ", "")
    return forwarded == "https" or "proto=https" in standard.split(";")


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session with Secure decided per request (see the module docstring)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        from flask import request
        return bool(app.config["SESSION_COOKIE_SECURE"]) or is_https(request)


def cross_origin(request: Request) -> str | None:
    """Why a browser form post comes from another site, or None. As Django's CSRF check: the Origin
    (else the Referer) must name this host; a browser adds these itself and a page cannot forge them.
    A request with neither (curl, a script) is no cross-site forgery and passes."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return None
    if source == "null":
        return "the browser sent Origin: null (a sandboxed or privacy-hidden page)"
    parts = urlsplit(source)
    hosts = {request.host.lower()}
    forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip().lower()
    if forwarded:
        hosts.add(forwarded)
    if parts.netloc.lower() not in hosts:
        return f"the form was posted from another site ({parts.scheme}://{parts.netloc[:100]})"
    if parts.scheme != "https" and is_https(request):
        return "the form was posted from a plain http page to an https one"
    return None


class LoginLimiter:
    """Counts wrong tokens per client address in a sliding window. Thread-safe (waitress has 8 threads)."""

    def __init__(self, clock: Callable[[], float], limit: int = LOGIN_FAILURES,
                 window: float = LOGIN_WINDOW_SECONDS):
        self.clock, self.limit, self.window = clock, limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may now."""
        with self._lock:
            times = self._recent(client)
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window - self.clock()))

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) >= MAX_TRACKED_CLIENTS:
                self._forget_old()
            self._recent(client).append(self.clock())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.setdefault(client, deque(maxlen=self.limit))
        while times and times[0] <= self.clock() - self.window:
            times.popleft()
        return times

    def _forget_old(self) -> None:
        horizon = self.clock() - self.window
        for client in [c for c, t in self._failures.items() if not t or t[-1] <= horizon]:
            del self._failures[client]
        while len(self._failures) >= MAX_TRACKED_CLIENTS:  # all recent: drop the oldest entries
            del self._failures[next(iter(self._failures))]


def client_address(request: Request) -> str:
    """The peer address. X-Forwarded-For is not trusted: a guesser would set it to dodge the limit."""
    return str(request.remote_addr or "unknown")
