"""The shared work queue (engine/pagerduty/queue.py, pgqueue.py) against a throwaway PostgreSQL."""
from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pg_server import pg_server, pg_url  # noqa: F401

from engine.pagerduty.migrations import MIGRATIONS
from engine.pagerduty.pgqueue import PURGE_DONE, EventQueue
from engine.pagerduty.pgstate import PgState
from engine.pagerduty.queue import Entry, QueueUnavailable, ordering_key
from engine.pagerduty.state import State


@pytest.fixture
def queue(pg_url: str) -> Iterator[EventQueue]:  # noqa: F811
    PgState(pg_url).close()  # applies the migrations, the queue's (5) among them
    q = EventQueue(pg_url, lease_seconds=30)
    yield q
    q.close()


def entry(key: str, n: int, source: str = "api") -> Entry:
    return Entry(json.dumps({"type": "build", "repo": key, "n": n}), None, source, f"repo:{key}")


def test_a_claim_takes_the_oldest_rows_and_leases_them_to_the_worker(queue: EventQueue, pg_url: str) -> None:  # noqa: F811
    ids = queue.enqueue([entry("a", 1), entry("b", 2)])
    jobs = queue.claim("w1", 10)
    assert [j.id for j in jobs] == ids and json.loads(jobs[0].body)["n"] == 1
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT status, claimed_by, lease_until - extract(epoch FROM clock_timestamp())"
                            " FROM event_queue ORDER BY id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("doing", "w1"), ("doing", "w1")]
    assert all(25 < r[2] <= 30 for r in rows)
    assert queue.claim("w2", 10) == []  # held: nobody else gets them


def test_an_event_waits_while_an_earlier_one_of_its_key_is_unfinished(queue: EventQueue) -> None:
    first, second, other = queue.enqueue([entry("a", 1), entry("a", 2), entry("b", 3)])
    jobs = queue.claim("w1", 10)
    assert [j.id for j in jobs] == [first, other]
    assert queue.claim("w2", 10) == []  # "a" 2 waits for "a" 1, held by w1
    assert queue.claim("w1", 10) == []  # even for the worker holding "a" 1
    assert queue.finish("w1", jobs[0], [])
    assert [j.id for j in queue.claim("w2", 10)] == [second]


def test_a_released_event_holds_back_the_later_events_of_its_key_until_due(queue: EventQueue) -> None:
    first, second, other = queue.enqueue([entry("a", 1), entry("a", 2), entry("b", 3)])
    jobs = queue.claim("w1", 10)
    assert queue.release("w1", jobs[0], 3600, "PagerDuty unreachable")
    queue.finish("w1", jobs[1], [])
    assert queue.claim("w2", 10) == []  # "a" 1 is not due; "a" 2 is behind it
    queue.release_all("w2")
    with psycopg.connect(queue.url, autocommit=True) as conn:
        conn.execute("UPDATE event_queue SET available_at = 0 WHERE id = %s", (first,))
    again = queue.claim("w2", 10)
    assert [(j.id, j.attempts) for j in again] == [(first, 1)]


def test_a_lease_that_ended_lets_another_worker_take_the_event_and_go_on_from_its_progress(
        queue: EventQueue) -> None:
    (row,) = queue.enqueue([entry("a", 1)])
    (job,) = queue.claim("dead", 10)
    assert queue.save_progress("dead", job, 2, ["line 3: not JSON"])
    with psycopg.connect(queue.url, autocommit=True) as conn:  # the worker died; its lease ends
        conn.execute("UPDATE event_queue SET lease_until = 0 WHERE id = %s", (row,))
    (taken,) = queue.claim("alive", 10)
    assert (taken.id, taken.units_done, taken.problems) == (row, 2, ["line 3: not JSON"])
    assert not queue.save_progress("dead", job, 3, [])  # the dead one's late write changes nothing
    assert not queue.finish("dead", job, [])
    assert queue.finish("alive", taken, [])
    assert queue.counts() == {"done": 1}


def test_a_failed_event_stays_with_its_reason(queue: EventQueue) -> None:
    queue.enqueue([entry("a", 1)])
    (job,) = queue.claim("w", 1)
    assert queue.finish("w", job, ["queue row 1: event b1: schema: repo: expected text"])
    assert queue.counts() == {"failed": 1}
    (failed,) = queue.failed()
    assert failed["error"] == "queue row 1: event b1: schema: repo: expected text"
    assert json.loads(failed["body"])["n"] == 1


def test_a_file_enqueued_once_is_not_enqueued_again(queue: EventQueue) -> None:
    assert queue.enqueue_once("file x 1:2:3:4", [entry("a", 1), entry("b", 2)]) is not None
    assert queue.enqueue_once("file x 1:2:3:4", [entry("a", 1), entry("b", 2)]) is None
    assert queue.counts() == {"todo": 2}


def test_workers_racing_never_hold_two_events_of_one_key_and_apply_each_key_in_order(queue: EventQueue) -> None:
    keys, per_key = 12, 15
    rows = [entry(f"k{k}", n) for n in range(per_key) for k in range(keys)]
    queue.enqueue(rows)
    seen: dict[str, list[int]] = defaultdict(list)
    in_flight: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def work(name: str) -> None:
        mine = EventQueue(queue.url)
        start.wait()
        try:
            while True:
                jobs = mine.claim(name, 5)
                if not jobs:
                    if sum(len(v) for v in seen.values()) == keys * per_key:
                        return
                    continue
                for job in jobs:
                    with lock:
                        if job.ordering_key in in_flight:
                            overlaps.append(job.ordering_key)
                        in_flight.add(job.ordering_key)
                        seen[job.ordering_key].append(json.loads(job.body)["n"])
                    with lock:
                        in_flight.discard(job.ordering_key)
                    assert mine.finish(name, job, [])
        finally:
            mine.close()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert overlaps == []
    assert {k: v for k, v in seen.items()} == {f"repo:k{k}": list(range(per_key)) for k in range(keys)}
    assert queue.counts() == {"done": keys * per_key}


def test_one_replica_leads_and_another_takes_over_when_it_goes(queue: EventQueue) -> None:
    other = EventQueue(queue.url)
    try:
        assert queue.lead() and queue.lead()  # still the leader on the next round
        assert not other.lead()
        queue.close()  # the leader's process ends: its session lock goes with it
        assert other.lead()
    finally:
        other.close()


def test_an_unreachable_database_raises_queue_unavailable_without_the_password(pg_server: Any) -> None:  # noqa: F811
    secret = "s3cret-pass-word"
    q = EventQueue(f"postgresql://pagerules:{secret}@127.0.0.1:1/nowhere")
    with pytest.raises(QueueUnavailable) as caught:
        q.enqueue([entry("a", 1)])
    assert "cannot connect to the queue database postgresql://pagerules@127.0.0.1:1/nowhere" in str(caught.value)
    assert secret not in str(caught.value)


def test_migration_5_makes_the_queue_table_on_sqlite_too(tmp_path: Any) -> None:
    state = State(str(tmp_path / "state.db"))
    try:
        assert state.schema_version == MIGRATIONS[-1].version and MIGRATIONS[4].version == 5
        with state.transaction() as db:
            assert db.execute("SELECT count(*) FROM event_queue").fetchone()[0] == 0
    finally:
        state.close()


@pytest.mark.parametrize(("payload", "kind", "expected"), [
    ({"type": "build", "repo": "acme/api"}, None, "repo:acme/api"),
    ({"repository": {"full_name": "acme/web"}, "action": "completed"}, "github.workflow_run", "repo:acme/web"),
    ({"alerts": []}, "alertmanager", "source:alertmanager"),
    ({"data": {"issue": {"id": "1"}}}, "sentry.issue", "source:sentry"),
    ({"type": "sentry.event_alert", "data": {}}, None, "source:sentry"),
    ({"repo": 3, "type": "build"}, None, "source:build"),
    ({}, None, "source:"),
])
def test_the_ordering_key_is_the_repository_else_the_source(payload: dict[str, Any], kind: str | None,
                                                             expected: str) -> None:
    assert ordering_key(payload, kind) == expected


def age(url: str, seconds: float) -> None:
    """Move every finished row's finish that much into the past."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE event_queue SET finished_at = finished_at - %s WHERE finished_at IS NOT NULL", (seconds,))


def test_purge_deletes_old_done_rows_in_batches_and_keeps_failed_and_unfinished_ones(queue: EventQueue) -> None:
    queue.enqueue([entry(f"k{n}", n) for n in range(7)])
    jobs = queue.claim("w", 10)
    for job in jobs[:5]:
        assert queue.finish("w", job, [])
    assert queue.finish("w", jobs[5], ["queue row 6: event x: PagerDuty said 400"])
    age(queue.url, 3600)
    assert queue.purge_done(7200, batch=2) == 0  # not old enough yet
    assert queue.purge_done(1800, batch=2) == 2  # a batch at a time, oldest first
    assert [r["id"] for r in queue.rows("done")] == [j.id for j in jobs[2:5]][::-1]
    assert queue.purge_done(1800, batch=2) == 2 and queue.purge_done(1800, batch=2) == 1
    assert queue.purge_done(1800, batch=2) == 0
    assert queue.counts() == {"failed": 1, "doing": 1}  # the failed row stays for `queue retry`


def test_purge_reads_only_old_done_rows_from_an_index(queue: EventQueue) -> None:
    """Retention runs every minute on a queue that keeps every finished row: a purge that read the whole
    table (a per-row clock call no index can answer) grew with the queue's history."""
    queue.enqueue([entry(f"k{n}", n) for n in range(3)])
    with psycopg.connect(queue.url, autocommit=True) as conn:
        conn.execute("ANALYZE event_queue")
        conn.execute("SET enable_seqscan = off")  # a three-row table would be scanned whatever the indexes
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {PURGE_DONE}", (1800, 500)))
    assert "Index Scan using event_queue_done" in plan and "Index Cond: (finished_at <" in plan, plan


def test_a_failed_row_is_retried_from_its_first_event_and_others_are_refused(queue: EventQueue) -> None:
    failing, done, later = queue.enqueue([entry("a", 1), entry("b", 2), entry("a", 3)])
    first, second = queue.claim("w", 10)
    assert queue.save_progress("w", first, 1, ["line 2: not JSON"])
    assert queue.finish("w", first, ["line 2: not JSON", "event a1: PagerDuty said 400"])
    assert queue.finish("w", second, [])
    (third,) = queue.claim("w", 10)  # the later row of "a" went on after the failure
    assert queue.finish("w", third, [])
    assert queue.retry(failing) is None
    assert queue.retry(done) == "done" and queue.retry(424242) == "missing"
    (again,) = queue.claim("w2", 10)
    assert (again.id, again.units_done, again.problems, again.attempts) == (failing, 0, [], 0)
    assert queue.retry(failing) == "doing"
    (row,) = [r for r in queue.rows() if r["id"] == failing]
    assert row["error"] is None and row["finished_at"] is None
    assert [r["id"] for r in queue.rows("done")] == [later, done]
