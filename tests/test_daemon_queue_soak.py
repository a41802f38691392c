"""The soak test of the shared queue (issue 18): 10,000 events over 500 keys, three `watch --queue` workers
on one throwaway PostgreSQL and the fake PagerDuty, one worker killed with SIGKILL every few seconds and
started again. Every key ends with exactly one incident at the fake, resolved after it was created, and
no row is left unfinished or failed."""
from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from builders import Workers, build, wait_for
from fake_pagerduty import FakePagerDuty
from pg_server import pg_server, pg_url  # noqa: F401

from engine.pagerduty.pgqueue import EventQueue
from engine.pagerduty.pgstate import PgState
from engine.pagerduty.queue import Entry, ordering_key

KEYS, PER_KEY = 500, 20  # 10,000 events
WORKERS = 3
KILL_EVERY_ROWS = 1000  # a kill each time this many more rows are done: every few seconds
LEASE = "2"
DEADLINE_SECONDS = 240


def soak_events(keys: int, per_key: int, seed: int = 18) -> list[dict[str, Any]]:
    """Per repository (its own ordering key and incident): build 1 fails, repeated, then build 2 passes,
    repeated (how many of each varies by key), the repositories' streams shuffled into one another with
    each one's order kept. A recovery applied before its trigger, or a trigger after it, leaves an
    incident open or opens a second one."""
    rng = random.Random(seed)
    streams = []
    for k in range(keys):
        fails = 1 + k % (per_key - 1)
        streams.append([build(1, "failed", repo=f"soak/r{k}", eid=f"r{k}-f{n}") for n in range(fails)]
                       + [build(2, "passed", repo=f"soak/r{k}", eid=f"r{k}-p{n}") for n in range(per_key - fails)])
    events, heads = [], [0] * keys
    live = list(range(keys))
    while live:
        pick = rng.randrange(len(live))
        k = live[pick]
        events.append(streams[k][heads[k]])
        heads[k] += 1
        if heads[k] == per_key:
            live[pick] = live[-1]
            live.pop()
    return events


@pytest.fixture
def workers(tmp_path: Path, fake: FakePagerDuty, pg_url: str) -> Iterator[Workers]:  # noqa: F811
    PgState(pg_url).close()
    group = Workers(tmp_path, fake, pg_url, LEASE)
    yield group
    group.stop()


def unfinished(conn: psycopg.Connection[Any]) -> int:
    """Rows todo or doing: a count from the queue's partial index, cheap to ask often."""
    row = conn.execute("SELECT count(*) FROM event_queue WHERE status IN ('todo', 'doing')").fetchone()
    return int(row[0]) if row else 0


def statuses(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM event_queue GROUP BY status").fetchall())


def test_soak_ten_thousand_events_three_workers_one_killed_every_few_seconds(
        workers: Workers, fake: FakePagerDuty, pg_url: str) -> None:  # noqa: F811
    events = soak_events(KEYS, PER_KEY)
    assert len(events) == KEYS * PER_KEY == 10_000
    queue = EventQueue(pg_url)
    try:
        queue.enqueue([Entry(json.dumps(e), None, "soak", ordering_key(e, None)) for e in events])
    finally:
        queue.close()
    for _ in range(WORKERS):
        workers.start(wait=False)
    started, kills, victim, next_kill = time.monotonic(), 0, 0, KILL_EVERY_ROWS
    with psycopg.connect(pg_url, autocommit=True) as conn:
        finished = [0]

        def drained_or_kill_due() -> bool:  # a kill is due each time KILL_EVERY_ROWS more rows are finished
            finished[0] = len(events) - unfinished(conn)
            return finished[0] == len(events) or finished[0] >= next_kill

        while True:
            wait_for(drained_or_kill_due, DEADLINE_SECONDS - (time.monotonic() - started), "the queue to drain")
            if finished[0] == len(events):
                break
            doomed = workers.alive()[victim % WORKERS]  # kill -9 one worker mid-work, start another in its place
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=10)
            workers.start(wait=False)
            kills, victim, next_kill = kills + 1, victim + 1, finished[0] + KILL_EVERY_ROWS
        final = statuses(conn)
    elapsed = time.monotonic() - started
    print(f"soak: {len(events)} events, {KEYS} keys, {WORKERS} workers, {kills} kills: {elapsed:.1f} s")
    assert final == {"done": len(events)}  # nothing failed, nothing left
    assert kills >= 8
    expected = {f"codespar-soak-r{k}-build-1" for k in range(KEYS)}
    assert {key: len(ids) for key, ids in fake.by_key.items()} == dict.fromkeys(expected, 1)  # one incident each
    assert fake.open_keys() == []  # every recovery resolved it
    created, resolved, posts = {}, {}, 0
    for call in fake.calls():  # a request cut short by a kill has a body that is not JSON: PagerDuty refuses it
        incident = call["body"].get("incident") if isinstance(call["body"], dict) else None
        if call["method"] == "POST" and call["path"] == "/incidents" and incident:
            created.setdefault(incident["incident_key"], call["at"])
            posts += 1
        elif call["method"] == "PUT" and incident and incident["status"] == "resolved":
            key = fake.incidents[call["path"].rsplit("/", 1)[1]]["incident_key"]
            resolved.setdefault(key, call["at"])
    assert set(created) == set(resolved) == expected
    assert all(created[key] < resolved[key] for key in expected)  # in order: resolved after it was created
    assert posts - KEYS <= kills  # a repeated call only for an event in flight at a kill
