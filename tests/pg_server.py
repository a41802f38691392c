"""A throwaway PostgreSQL server for the tests: one cluster per test process (each pytest-xdist worker has its own).

``initdb`` and ``pg_ctl`` from PATH or /usr/lib/postgresql/*/bin (Debian's postgresql package;
.ci/run installs it when missing) make a cluster in a temporary folder, listening on a free
loopback port only, with trust authentication for loopback and its own socket folder only; it
is stopped and removed at the end of the session (``stop()`` and ``start()`` make an outage in
between). PostgreSQL refuses to run as root, so as root the cluster belongs to a system user
(``pagerules-pg``, created when missing). Missing binaries fail the tests that need them, with
the reason: they are never skipped.

Use: ``from pg_server import pg_server, pg_url  # noqa: F401`` in a test module; ``pg_url`` is a
fresh schema per test (its URL sets search_path), dropped afterwards. Every module that imports
``pg_server`` gets the same cluster: the fixture hands out tests/conftest.py's ``pg_cluster``
(a session fixture imported into N modules would otherwise be N fixtures, so N clusters).

If the test process dies without running its ``finally`` (a crashed or killed xdist worker), a
watchdog process (``reaped``) stops the cluster and removes its folder, so no postgres is left.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SYSTEM_USER = "pagerules-pg"
START_TIMEOUT_SECONDS = 60


def find_binaries() -> tuple[str, str] | str:
    """(initdb, pg_ctl), or why they cannot be found."""
    for folder in [None, *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        initdb, pg_ctl = shutil.which("initdb", path=folder), shutil.which("pg_ctl", path=folder)
        if initdb and pg_ctl:
            return initdb, pg_ctl
    return ("PostgreSQL's initdb and pg_ctl are neither on PATH nor under /usr/lib/postgresql/*/bin: install "
            "Debian's postgresql package (apt-get install postgresql; .ci/run does it when they are missing)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user_exists() -> bool:
    return subprocess.run(["id", "-u", SYSTEM_USER], capture_output=True).returncode == 0


def _as_owner(command: list[str]) -> list[str]:
    """As root, run ``command`` as the unprivileged system user (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return command
    if not _user_exists():
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                               SYSTEM_USER], capture_output=True, text=True)
        # Two xdist workers may both find the user missing; the one that loses the race finds it made.
        if made.returncode != 0 and not _user_exists():
            pytest.fail(f"useradd {SYSTEM_USER} failed (exit {made.returncode}): {made.stderr.strip()}")
    return ["runuser", "-u", SYSTEM_USER, "--", *command]


# The watchdog: it blocks reading its stdin, a pipe from the test process. "done" means the test process
# cleaned up itself; end of file without it means that process died (a crash, SIGKILL, a killed xdist
# worker: no finally ran), so the watchdog runs the clean-up command (a JSON list) itself, then exits.
_WATCHDOG = """
import json, subprocess, sys
command = json.loads(sys.argv[1])
if sys.stdin.buffer.read() != b"done":
    subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)
"""


@contextmanager
def reaped(command: list[str]) -> Iterator[None]:
    """Run ``command`` if this process dies before the block ends; the block's own clean-up does it otherwise.

    The watchdog has a session of its own, so a signal to the test run's process group (Ctrl-C, a CI
    timeout) does not kill it before it has cleaned up.
    """
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, json.dumps(command)], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    assert watchdog.stdin is not None
    try:
        yield
    finally:
        watchdog.stdin.write(b"done")
        watchdog.stdin.close()
        watchdog.wait(timeout=START_TIMEOUT_SECONDS)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS)
    if done.returncode != 0:
        pytest.fail(f"{what} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


@dataclass
class PgServer:
    host: str
    port: int
    user: str = "postgres"
    pg_ctl: str = ""
    data: Path | None = None
    log: Path | None = None
    options: str = ""

    def url(self, dbname: str = "postgres", **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}" + (f"?{query}" if query else "")

    def stop(self) -> None:
        """Stop the server at once (as a crash would: ``immediate``), for tests of an outage; start() again after."""
        _run([self.pg_ctl, "--pgdata", str(self.data), "--mode", "immediate", "--wait", "stop"], "pg_ctl stop")

    def start_command(self) -> list[str]:
        return [self.pg_ctl, "--pgdata", str(self.data), "--log", str(self.log), "--options", self.options,
                "--wait", f"--timeout={START_TIMEOUT_SECONDS}", "start"]

    def start(self) -> None:
        """Start it again on the same port, waiting until it accepts connections."""
        _run(self.start_command(), f"pg_ctl start (log: {self.log})")


@contextmanager
def throwaway_server() -> Iterator[PgServer]:
    """A new cluster on a free loopback port, stopped and removed on exit (the fixture; bench/ too)."""
    found = find_binaries()
    if isinstance(found, str):
        pytest.fail(found)
    initdb, pg_ctl = found
    folder = Path(tempfile.mkdtemp(prefix="pagerules-pg-"))
    data, log = folder / "data", folder / "server.log"
    stop = _as_owner([pg_ctl, "--pgdata", str(data), "--mode", "immediate", "--wait", "stop"])  # makes the user
    with reaped(["sh", "-c", 'timeout 60 "$@"; rm -rf "$0"', str(folder), *stop]):
        try:
            if os.geteuid() == 0:
                shutil.chown(folder, SYSTEM_USER)
            _run([initdb, "--pgdata", str(data), "--username", "postgres", "--auth", "trust", "--encoding", "UTF8",
                  "--locale", "C", "--no-sync", "--no-instructions"], "initdb")
            # Trust on loopback and this folder's socket only; nothing else can connect.
            (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
            yield _start_on_a_free_port(pg_ctl, data, log, folder)
        finally:
            if (data / "postmaster.pid").exists():
                subprocess.run(stop, capture_output=True, timeout=START_TIMEOUT_SECONDS)
            shutil.rmtree(folder, ignore_errors=True)


def _start_on_a_free_port(pg_ctl: str, data: Path, log: Path, folder: Path, tries: int = 3) -> PgServer:
    """Start the cluster on a free loopback port; another process may take the port between the probe and
    the server's bind (other xdist workers probe too), so a port already in use means another try."""
    for attempt in range(1, tries + 1):
        port = _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        server = PgServer("127.0.0.1", port, pg_ctl=pg_ctl, data=data, log=log, options=options)
        started = subprocess.run(_as_owner(server.start_command()), capture_output=True, text=True,
                                 timeout=START_TIMEOUT_SECONDS * 2)
        if started.returncode == 0:
            return server
        said = log.read_text(errors="replace") if log.exists() else ""
        if "could not bind" not in said or attempt == tries:
            pytest.fail(f"pg_ctl start failed (exit {started.returncode}; log: {log}): "
                        f"{started.stderr.strip() or started.stdout.strip()}\n{said[-2000:]}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def pg_server(pg_cluster: PgServer) -> PgServer:
    """The process's one cluster (tests/conftest.py starts it on first use and stops it at the end)."""
    return pg_cluster


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A URL whose tables go to a fresh schema of their own (cheaper than a database per test)."""
    import psycopg
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield pg_server.url(options=f"-csearch_path%3D{schema}")
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
