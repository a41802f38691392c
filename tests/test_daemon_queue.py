"""`pagerules watch --queue` end to end: workers as subprocesses on one throwaway PostgreSQL and the
fake PagerDuty; a worker killed with SIGKILL, a PostgreSQL restart, files fed into the queue."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from builders import ROOT, Daemon, Workers, build, replace_file, wait_for
from fake_pagerduty import FakePagerDuty
from pg_server import PgServer, pg_server, pg_url  # noqa: F401

from engine.pagerduty.pgqueue import EventQueue
from engine.pagerduty.pgstate import PgState
from engine.pagerduty.queue import Entry, ordering_key

LEASE = "2"


@pytest.fixture
def workers(tmp_path: Path, fake: FakePagerDuty, pg_url: str) -> Iterator[Workers]:  # noqa: F811
    PgState(pg_url).close()
    group = Workers(tmp_path, fake, pg_url, LEASE)
    yield group
    group.stop()


def enqueue(url: str, events: list[dict[str, Any]]) -> list[int]:
    queue = EventQueue(url)
    try:
        return queue.enqueue([Entry(json.dumps(e), None, "api", ordering_key(e, None)) for e in events])
    finally:
        queue.close()


def statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM event_queue GROUP BY status").fetchall())


def fails_then_passes(repos: int, rounds: int) -> list[dict[str, Any]]:
    """Per repository: build 1 fails, 2 passes (resolving 1), 3 fails, 4 passes, ...; interleaved across
    repositories. A pass applied before the failure it follows would leave that incident open."""
    return [build(2 * r + step, "failed" if step == 1 else "passed", repo=f"acme/r{k}", eid=f"r{k}-{2 * r + step}")
            for r in range(rounds) for step in (1, 2) for k in range(repos)]


def assert_one_resolved_incident_per_key(fake: FakePagerDuty, repos: int, rounds: int) -> None:
    expected = {f"codespar-acme-r{k}-build-{2 * r + 1}" for k in range(repos) for r in range(rounds)}
    assert set(fake.by_key) == expected
    assert {key: len(ids) for key, ids in fake.by_key.items()} == dict.fromkeys(expected, 1)  # one incident each
    assert fake.open_keys() == []  # and every recovery resolved it, so each came after its trigger


@pytest.mark.parametrize("count", [2, 3])
def test_workers_apply_every_key_in_order_with_one_incident_each(workers: Workers, fake: FakePagerDuty,
                                                                 count: int) -> None:
    repos, rounds = 12, 4
    for _ in range(count):
        workers.start()
    enqueue(workers.url, fails_then_passes(repos, rounds))
    wait_for(lambda: statuses(workers.url) == {"done": repos * rounds * 2}, 30, "every row done")
    assert_one_resolved_incident_per_key(fake, repos, rounds)
    handled = [log.read_text().count(" -> done") for log in workers.logs]
    assert len(handled) == count and sum(handled) == repos * rounds * 2 and all(handled), handled  # all took part
    creates = [c["body"]["incident"]["incident_key"] for c in fake.calls("POST", "/incidents")]
    assert len(creates) == len(set(creates)) == repos * rounds  # and no incident was asked for twice


def test_a_worker_killed_mid_batch_leaves_its_events_to_another_none_lost_none_doubled(
        workers: Workers, fake: FakePagerDuty) -> None:
    repos, rounds = 20, 5
    doomed = workers.start()
    enqueue(workers.url, fails_then_passes(repos, rounds))

    def held_by_doomed() -> int:
        with psycopg.connect(workers.url) as conn:
            row = conn.execute("SELECT count(*) FROM event_queue WHERE status = 'doing' AND claimed_by LIKE %s",
                               (f"%:{doomed.pid}:%",)).fetchone()
        return int(row[0]) if row else 0

    wait_for(lambda: held_by_doomed() > 0 and statuses(workers.url).get("done", 0) > 0, 20,
             "the first worker to be mid-batch")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=5)
    assert held_by_doomed() > 0  # it died holding claimed rows
    workers.start()
    wait_for(lambda: statuses(workers.url) == {"done": repos * rounds * 2}, 20, "the survivor to finish")
    assert_one_resolved_incident_per_key(fake, repos, rounds)
    creates = fake.calls("POST", "/incidents")
    # a create the kill cut short reached the fake with no body, or part of one (refused 400): not a create
    keys = [c["body"]["incident"]["incident_key"] for c in creates if isinstance(c["body"], dict)]
    assert len(keys) - len(set(keys)) <= 1  # at most the one event in flight at the kill is asked again


def test_workers_ride_out_a_postgresql_restart_and_lose_nothing(workers: Workers, fake: FakePagerDuty,
                                                               pg_server: PgServer) -> None:  # noqa: F811
    repos, rounds = 8, 3
    workers.start()
    workers.start()
    events = fails_then_passes(repos, rounds)
    half = len(events) // 2
    enqueue(workers.url, events[:half])
    wait_for(lambda: statuses(workers.url) == {"done": half}, 20, "the first half done")
    pg_server.stop()
    try:
        wait_for(lambda: all("queue database unavailable" in log.read_text() for log in workers.logs), 20,
                 "both workers to notice the outage")
    finally:
        pg_server.start()
    enqueue(workers.url, events[half:])
    wait_for(lambda: statuses(workers.url) == {"done": len(events)}, 20, "the rest done after the restart")
    assert_one_resolved_incident_per_key(fake, repos, rounds)
    assert all(proc.poll() is None for proc in workers.procs)


def test_files_in_the_events_directory_feed_the_queue(workers: Workers, fake: FakePagerDuty) -> None:
    events = workers.harness.events
    workers.start("--events-dir", str(events))
    workers.harness.drop("batch.ndjson", fails_then_passes(3, 1) + [])
    (events / "broken.json").write_text('{"type": "build", "repo": "acme/r9", "build_number": 1,\n')
    wait_for(lambda: (events / "processed" / "batch.ndjson").exists()
             and (events / "failed" / "broken.json").exists(), 20, "both files moved out")
    wait_for(lambda: statuses(workers.url) == {"done": 6}, 20, "the fed rows done")
    assert_one_resolved_incident_per_key(fake, 3, 1)
    assert (events / "failed" / "broken.json.error").read_text().strip() != ""


def test_watch_queue_refuses_a_sqlite_state(tmp_path: Path, fake: FakePagerDuty) -> None:
    harness = Daemon(tmp_path, fake)
    done = subprocess.run(harness.args("--queue"), capture_output=True, text=True, env=harness.env, timeout=60)
    assert done.returncode != 0
    assert ("--queue needs the state in PostgreSQL: set state_url (or PAGERULES_STATE_URL, or --state) to a "
            "postgresql:// URL; the queue lives in that database") in done.stderr


HELD_RULE = """
triggers:
  - id: build-failing-for
    on: build
    match: {status: failed}
    severity: high
    title: "{{ event.repo }} still failing"
    incident_key: "{{ event.repo | slug }}-failing"
    labels: {repo: "{{ event.repo }}"}
    for: 2s
"""


def test_a_worker_pages_a_held_trigger_when_its_time_passes_with_no_further_event(
        tmp_path: Path, fake: FakePagerDuty, pg_url: str) -> None:  # noqa: F811
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "held.yaml").write_text(HELD_RULE)
    (tmp_path / "pd.yaml").write_text("rules_dir: rules\nevents_dir: events\n")
    PgState(pg_url).close()
    group = Workers(tmp_path, fake, pg_url, LEASE)
    try:
        group.start()
        enqueue(pg_url, [build(1)])
        wait_for(lambda: statuses(pg_url).get("done") == 1, 20, "the worker to hold the trigger")
        assert [c for c in fake.calls() if c["path"] == "/incidents" and c["method"] == "POST"] == []
        wait_for(lambda: any(c["path"] == "/incidents" and c["method"] == "POST" for c in fake.calls()), 20,
                 "the held trigger to page on its own")
    finally:
        group.stop()


def lease_of(url: str, row: int) -> tuple[str | None, float]:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT claimed_by, lease_until FROM event_queue WHERE id = %s", (row,)).fetchone()
    assert found is not None
    return found[0], found[1]


def test_a_worker_keeps_its_rows_leased_while_it_works_and_skips_a_row_it_lost(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from engine.daemon.queue_worker import QueueWorker
    (tmp_path / "pd.yaml").write_text(f"rules_dir: {ROOT / 'rules'}\nenabled: false\n")
    stalled = [0.0]  # how long this worker stood still (its monotonic clock runs ahead by that)
    worker = QueueWorker(str(tmp_path / "pd.yaml"), {}, pg_url, lease_seconds=0.6, name="slow",
                         monotonic=lambda: time.monotonic() + stalled[0])
    first, second = enqueue(pg_url, [build(1, repo="acme/a"), build(2, repo="acme/b")])
    handled: list[int] = []

    def slow_handle(job: Any) -> None:  # a PagerDuty call that outlasts the lease, then another worker's theft
        claimed_by, lease = lease_of(pg_url, second)
        wait_for(lambda: lease_of(pg_url, second)[1] > lease, 10, "the heartbeat to renew the waiting row")
        assert claimed_by == lease_of(pg_url, second)[0] == "slow"  # still this worker's: it is alive
        with psycopg.connect(pg_url) as conn:  # the worker stalls past its lease, and another takes the row
            conn.execute("UPDATE event_queue SET claimed_by = 'thief' WHERE id = %s", (second,))
        stalled[0] = 0.6
        handled.append(job.id)

    monkeypatch.setattr(worker, "handle", slow_handle)
    try:
        assert worker.step()
    finally:
        worker.stopping.set()
        worker.queue.close()
    assert handled == [first]  # the row another worker holds now is left to it, never acted on twice
    assert lease_of(pg_url, second)[0] == "thief"


def test_a_worker_loads_rule_edits_made_while_it_starts_and_while_it_runs(tmp_path: Path,
                                                                          pg_url: str) -> None:  # noqa: F811
    """Found in review: `watch --queue` reloaded only on SIGHUP, so a rule edit never took effect on a worker
    (the contract: an edit applies to the next event). It observes the rules folder and the config now, from
    before it reports it is on the queue; an edit made after its load and before that is compared for."""
    from engine.daemon.queue_worker import QueueWorker
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    (tmp_path / "pd.yaml").write_text("rules_dir: rules\nenabled: false\n")
    worker = QueueWorker(str(tmp_path / "pd.yaml"), {}, pg_url, name="editor")
    rule = tmp_path / "rules" / "build.yaml"
    versions = [worker.loaded.ruleset.version]
    rule.write_text(rule.read_text().replace("CI build #", "CI build number "))  # loaded, not yet observed
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        wait_for(lambda: worker.loaded.ruleset.version != versions[-1], 10, "the edit made while it started")
        versions.append(worker.loaded.ruleset.version)
        replace_file(rule, rule.read_text().replace("CI build number ", "CI run "))
        wait_for(lambda: worker.loaded.ruleset.version != versions[-1], 10, "the edit made while it runs")
        [failed] = [r for r in worker.loaded.ruleset.all_rules() if r.id == "build-failed"]
        assert "CI run" in failed.title.source  # type: ignore[attr-defined]
    finally:
        worker.stop()
        runner.join(15)
        worker.close()


def test_a_worker_asks_for_no_row_it_surely_still_holds(tmp_path: Path, pg_url: str,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Within half a lease of its claim no other worker can have taken a row, so no renewal round trip is
    spent on it before it is handled; past that, each row is asked for."""
    from engine.daemon.queue_worker import QueueWorker
    (tmp_path / "pd.yaml").write_text(f"rules_dir: {ROOT / 'rules'}\nenabled: false\n")
    now = [0.0]
    worker = QueueWorker(str(tmp_path / "pd.yaml"), {}, pg_url, lease_seconds=30, name="quick",
                         monotonic=lambda: now[0])
    enqueue(pg_url, [build(n, repo=f"acme/r{n}") for n in range(4)])
    asked: list[list[int]] = []
    renew = worker.queue.renew
    def counted(name: str, ids: list[int]) -> int:
        if threading.current_thread() is threading.main_thread():  # not the heartbeat
            asked.append(list(ids))
        return renew(name, ids)

    monkeypatch.setattr(worker.queue, "renew", counted)
    handled: list[int] = []

    def handle(job: Any) -> None:
        handled.append(job.id)
        if len(handled) == 2:
            now[0] += 15  # half the lease has gone by since the claim
        worker.queue.finish(worker.name, job, [])

    monkeypatch.setattr(worker, "handle", handle)
    try:
        assert worker.step()
    finally:
        worker.close()
    assert len(handled) == 4
    assert asked == [handled[2:3], handled[3:4]]  # none for the first two
    assert statuses(pg_url) == {"done": 4}


SERVICE_RULE = """
triggers:
  - id: service-down
    on: build
    match: {status: failed}
    severity: high
    title: "{{ event.branch }} down"
    incident_key: "service-{{ event.branch | slug }}"
    labels: {service: "{{ event.branch }}"}
"""


def test_two_workers_triggering_one_incident_key_from_two_ordering_keys_at_once_make_one_call(
        tmp_path: Path, fake: FakePagerDuty, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A rule whose incident_key ignores the repository: two events of two repositories (two ordering keys,
    so two workers may hold them at once) name one incident. The database decides who calls PagerDuty."""
    from engine.daemon.queue_worker import QueueWorker
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "service.yaml").write_text(SERVICE_RULE)
    (tmp_path / "pd.yaml").write_text("rules_dir: rules\n")
    for name, value in Daemon(tmp_path, fake).env.items():
        if name.startswith(("PAGERDUTY_", "PAGERULES_")):
            monkeypatch.setenv(name, value)
    pair = [QueueWorker(str(tmp_path / "pd.yaml"), {}, pg_url, name=f"w{n}") for n in range(2)]
    rounds, barrier, errors = 10, threading.Barrier(2), []

    def work(worker: Any, job: Any) -> None:
        try:
            barrier.wait(timeout=30)
            worker.handle(job)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    fake.faults = {"latency_ms": 60}  # PagerDuty takes a while: the two workers' calls would overlap
    try:
        for r in range(rounds):
            enqueue(pg_url, [build(r, repo="acme/api", branch=f"svc{r}", eid=f"a{r}"),
                             build(r, repo="acme/web", branch=f"svc{r}", eid=f"w{r}")])
            jobs = [worker.queue.claim(worker.name, 1) for worker in pair]
            assert [len(j) for j in jobs] == [1, 1]  # one each: their ordering keys differ
            threads = [threading.Thread(target=work, args=(w, j[0])) for w, j in zip(pair, jobs, strict=True)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
    finally:
        fake.faults = {}
        for worker in pair:
            worker.close()
    assert errors == []
    assert statuses(pg_url) == {"done": 2 * rounds}
    posts = [c["body"]["incident"]["incident_key"] for c in fake.calls("POST", "/incidents")]
    assert sorted(posts) == sorted(f"codespar-service-svc{r}" for r in range(rounds))  # one call per key, never two
    assert {key: len(ids) for key, ids in fake.by_key.items()} == {f"codespar-service-svc{r}": 1 for r in range(rounds)}


def test_a_key_whose_lock_is_held_elsewhere_past_the_wait_holds_up_its_row_only(
        tmp_path: Path, fake: FakePagerDuty, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Fourth review, item 6: a wait for an incident_key's lock that ran out was taken for the database
    going away: the worker gave back every row it held and backed off, so one key held by a frozen host
    held up the events of every other key with it. Now that row waits and is tried again; the rest go on."""
    from engine.daemon.queue_worker import QueueWorker
    from engine.pagerduty.keylock import NAMESPACE
    (tmp_path / "pd.yaml").write_text(f"rules_dir: {ROOT / 'rules'}\n")
    for name, value in Daemon(tmp_path, fake).env.items():
        if name.startswith(("PAGERDUTY_", "PAGERULES_")):
            monkeypatch.setenv(name, value)
    worker = QueueWorker(str(tmp_path / "pd.yaml"), {}, pg_url, name="patient")
    worker.locks.wait_seconds = 0.3
    stuck_row, free_row = enqueue(pg_url, [build(1, repo="acme/stuck"), build(1, repo="acme/free")])
    frozen = psycopg.connect(pg_url, autocommit=True)  # a frozen host's session, holding the key's lock
    frozen.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (NAMESPACE + "codespar-acme-stuck-build-1",))
    try:
        assert worker.step()  # no StateError: the database is there
        with psycopg.connect(pg_url) as conn:
            rows = dict((r[0], r[1:]) for r in conn.execute(
                "SELECT id, status, attempts, error FROM event_queue WHERE id IN (%s, %s)", (stuck_row, free_row)))
    finally:
        frozen.close()
        worker.close()
    assert rows[free_row][0] == "done"
    status, attempts, error = rows[stuck_row]
    assert (status, attempts) == ("todo", 1)  # tried again later, in its turn
    assert "incident_key 'codespar-acme-stuck-build-1': another worker has held its lock" in error
    assert fake.open_keys() == ["codespar-acme-free-build-1"]


def test_a_new_leader_takes_over_reconcile_when_the_leader_is_killed(tmp_path: Path, fake: FakePagerDuty,
                                                                    pg_url: str) -> None:  # noqa: F811
    """Two workers: one holds the leader lock and reconciles; kill -9 it, and the other takes the lock and
    reconciles within a bound (its next round), so an incident resolved by hand in PagerDuty after the kill
    still leaves the shared state."""
    PgState(pg_url).close()
    group = Workers(tmp_path, fake, pg_url, LEASE)
    group.harness.env["PAGERULES_RECONCILE_INTERVAL"] = "0.5"
    leads = "leads: it reconciles with PagerDuty"
    try:
        leader = group.start()
        wait_for(lambda: leads in group.logs[0].read_text(), 20, "the first worker to lead")
        follower = group.start()
        enqueue(pg_url, [build(7, repo="acme/api", eid="f7")])
        wait_for(lambda: statuses(pg_url) == {"done": 1}, 20, "the trigger handled")
        key = "codespar-acme-api-build-7"
        wait_for(lambda: len(fake.calls("GET", "/log_entries")) >= 2, 20, "the leader's rounds of reconcile")
        assert leads not in group.logs[1].read_text()  # one leader at a time

        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=10)
        killed = time.monotonic()
        state = PgState(pg_url)
        try:
            assert state.get(key) is not None  # open in the shared state
            fake.resolve_by_hand(key)  # a person resolves it in PagerDuty while no one reconciles
            wait_for(lambda: leads in group.logs[1].read_text() and state.get(key) is None, 20,
                     "the other worker to lead and reconcile the hand-resolved incident")
        finally:
            state.close()
        took = time.monotonic() - killed
        assert follower.poll() is None
        assert took < 20
        print(f"leader failover: reconciled by the new leader {took:.1f} s after the kill")
    finally:
        group.stop()


def test_only_the_leader_deletes_done_rows_past_their_keep(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    from engine.daemon.queue_worker import QueueWorker
    (tmp_path / "pd.yaml").write_text(f"rules_dir: {ROOT / 'rules'}\nenabled: false\n")
    leader, other = (QueueWorker(str(tmp_path / "pd.yaml"), {}, pg_url, name=name, keep_done_seconds=1800)
                     for name in ("leader", "other"))
    try:
        enqueue(pg_url, [build(n, repo=f"acme/r{n}") for n in range(3)])
        assert leader.step() and leader.leading
        with psycopg.connect(pg_url, autocommit=True) as conn:  # done an hour ago
            conn.execute("UPDATE event_queue SET finished_at = finished_at - 3600")
        enqueue(pg_url, [build(9, repo="acme/new")])
        other.step()
        assert not other.leading and statuses(pg_url) == {"done": 4}  # not the leader: it deletes nothing
        leader.next_purge = 0.0  # its next purge is due
        leader.step()
        assert statuses(pg_url) == {"done": 1}  # the leader deleted the three old ones, kept the new one
    finally:
        leader.close()
        other.close()
