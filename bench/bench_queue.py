"""The shared queue in PostgreSQL against the fake PagerDuty: throughput with 1, 2 and 4 workers, and
intake latency, all in one run beside their baselines (issue 18).

1. Throughput: 2,000 events over 100 repositories (per repository a build fails, then passes and
   resolves it, ten times) enqueued at once, until every row is done; with 1, 2 and 4
   `watch --queue` workers, each ÷ one file daemon (`watch`, SQLite state) on the same events in
   200 files renamed in at once.
   Each figure also gives the CPU the processes spent per event, which the machine's other load
   changes far less than events/s (the load average is printed too).
2. Intake latency: POST /api/events (one event) to 202, 500 times one after another on one
   connection, `serve --queue` (committed to PostgreSQL) and `serve` (a file fsynced): median and p99.

A throwaway PostgreSQL is started from Debian's package (tests/pg_server.py) and removed at the end.

    python bench/bench_queue.py
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from fakectl import start_fake

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import psycopg  # noqa: E402
from pg_server import PgServer, throwaway_server  # noqa: E402

from engine.pagerduty.pgqueue import EventQueue  # noqa: E402
from engine.pagerduty.pgstate import PgState  # noqa: E402
from engine.pagerduty.queue import Entry, ordering_key  # noqa: E402

REPOS, ROUNDS = 100, 10
TOTAL = REPOS * ROUNDS * 2
API_TOKEN = "bench-api-token-5c1d"
POSTS = 500


def workload(tag: str) -> list[dict[str, Any]]:
    return [{"type": "build", "id": f"{tag}-{k}-{n}", "repo": f"acme/{tag}{k}", "branch": "main", "build_number": n,
             "status": "failed" if n % 2 else "passed"}
            for r in range(ROUNDS) for n in (2 * r + 1, 2 * r + 2) for k in range(REPOS)]


def environment(fake_url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
    return {**clean, "PAGERDUTY_API_TOKEN": "fake-token-0123456789", "PAGERDUTY_FROM_EMAIL": "oncall-bot@example.com",
            "PAGERDUTY_SERVICE_ID": "PSVC001", "PAGERDUTY_ESCALATION_POLICY_ID": "PEP0001",
            "PAGERDUTY_API_URL": fake_url, "PAGERULES_API_TOKEN": API_TOKEN}


def fresh_schema(server: PgServer) -> str:
    schema = f"b_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = server.url(options=f"-csearch_path%3D{schema}")
    PgState(url).close()
    return url


def wait(check: Any, seconds: float, what: str) -> float:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return time.time()
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def cli(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), *args]


def config_file(tmp: Path, name: str) -> Path:
    events = tmp / name
    events.mkdir()
    path = tmp / f"{name}.yaml"
    path.write_text(f"rules_dir: {ROOT / 'rules'}\nstate_path: {tmp / name}.db\nevents_dir: {events}\n")
    return path


def cpu_seconds(pid: int) -> float:
    """User and system CPU a live process has used (Linux /proc): a figure the other load on the machine
    changes far less than events/s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def files_baseline(tmp: Path) -> tuple[float, float]:
    """One file daemon on SQLite: events/s, and its CPU ms per event."""
    fake, url = start_fake(ROOT)
    config, events = config_file(tmp, "files"), tmp / "files"
    log = tmp / "files.log"
    daemon = subprocess.Popen(cli("watch", "--config", str(config)), env=environment(url),
                              stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        wait(lambda: "watching" in log.read_text(), 30, "the file daemon")
        idle = cpu_seconds(daemon.pid)
        lines = workload("f")
        for f in range(200):
            (events / f".{f:04d}.ndjson.part").write_text(
                "\n".join(json.dumps(e) for e in lines[f * 10:(f + 1) * 10]) + "\n")
        started = time.time()
        for f in range(200):
            os.rename(events / f".{f:04d}.ndjson.part", events / f"{f:04d}.ndjson")
        done = events / "processed"
        finished = wait(lambda: done.exists() and sum(1 for _ in done.iterdir()) >= 200, 600, "the files")
        cpu = cpu_seconds(daemon.pid) - idle
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        fake.terminate()
    return TOTAL / (finished - started), cpu * 1000 / TOTAL


def queue_run(tmp: Path, server: PgServer, workers: int) -> tuple[float, float]:
    """``workers`` queue workers on one database: events/s from the enqueue to the last row done, and the
    workers' CPU ms per event (all of them together)."""
    fake, url = start_fake(ROOT)
    db = fresh_schema(server)
    config = config_file(tmp, f"queue{workers}")
    procs, logs = [], []
    try:
        for n in range(workers):
            log = tmp / f"queue{workers}-{n}.log"
            logs.append(log)
            procs.append(subprocess.Popen(cli("watch", "--config", str(config), "--queue", "--state", db),
                                          env=environment(url), stdout=subprocess.DEVNULL, stderr=log.open("w")))
        wait(lambda: all("on the queue in" in log.read_text() for log in logs), 60, "the workers")
        idle = sum(cpu_seconds(p.pid) for p in procs)
        queue = EventQueue(db)
        events = workload(f"q{workers}-")
        started = time.time()
        queue.enqueue([Entry(json.dumps(e), None, "bench", ordering_key(e, None)) for e in events])
        finished = wait(lambda: queue.counts() == {"done": TOTAL}, 600, "the queue")
        cpu = sum(cpu_seconds(p.pid) for p in procs) - idle
        queue.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        fake.terminate()
    return TOTAL / (finished - started), cpu * 1000 / TOTAL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def intake(tmp: Path, name: str, *extra: str) -> tuple[float, float]:
    """(median, p99) in ms of POST /api/events to 202, one event per POST."""
    fake, url = start_fake(ROOT)
    config, port = config_file(tmp, name), _free_port()
    server = subprocess.Popen(cli("serve", "--config", str(config), "--bind", f"127.0.0.1:{port}", *extra),
                              env=environment(url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait(up, 60, "serve")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
        ms = []
        for n, event in enumerate(workload("i")[:POSTS]):
            body = json.dumps(event)
            started = time.perf_counter()
            conn.request("POST", "/api/events", body, headers)
            response = conn.getresponse()
            response.read()
            ms.append((time.perf_counter() - started) * 1000)
            if response.status != 202:
                raise SystemExit(f"POST {n}: {response.status}")
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        fake.terminate()
    ms.sort()
    return statistics.median(ms), ms[int(len(ms) * 0.99) - 1]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, throwaway_server() as server:
        tmp = Path(folder)
        load = os.getloadavg()[0]
        baseline, base_cpu = files_baseline(tmp)
        print(f"throughput, {TOTAL:,} events over {REPOS} repositories, {os.cpu_count()} cores, load average "
              f"{load:.1f} at the start; baseline one file daemon on SQLite: {baseline:,.0f} events/s, "
              f"{base_cpu:.1f} ms CPU per event")
        for workers in (1, 2, 4):
            rate, cpu = queue_run(tmp, server, workers)
            print(f"  queue, {workers} worker{'s' if workers > 1 else ''} on one PostgreSQL: {rate:,.0f} events/s, "
                  f"{rate / baseline:.2f}x the file daemon; {cpu:.1f} ms CPU per event in the workers")
        queued = intake(tmp, "intake-queue", "--queue", "--state", fresh_schema(server))
        files = intake(tmp, "intake-files")
        print(f"intake, POST /api/events to 202, {POSTS} posts: queue median {queued[0]:.1f} ms, "
              f"p99 {queued[1]:.1f} ms; events directory median {files[0]:.1f} ms, p99 {files[1]:.1f} ms; median ratio "
              f"{queued[0] / files[0]:.2f}")


if __name__ == "__main__":
    main()
