"""Per-incident_key locks in PostgreSQL (engine/pagerduty/keylock.py): the lock itself, and two backends
racing on one key with and without it, against a throwaway PostgreSQL and the fake PagerDuty."""
from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from builders import live_config, wait_for
from fake_pagerduty import FakePagerDuty
from pg_server import pg_server, pg_url  # noqa: F401

from engine.dispatch.dispatcher import Backend, Dispatcher, NoteTaker
from engine.dispatch.outcomes import Status
from engine.evaluation.actions import ResolveAction, TriggerAction
from engine.pagerduty.backend import Live, make_client
from engine.pagerduty.keylock import KEEPALIVE_IDLE_SECONDS, NAMESPACE, KeyBusy, KeyLocked, KeyLocks
from engine.pagerduty.pgstate import PgState
from engine.pagerduty.queue import QueueUnavailable


@pytest.fixture
def locks(pg_url: str) -> Iterator[tuple[KeyLocks, KeyLocks]]:  # noqa: F811
    """Two processes' locks on one database."""
    first, second = KeyLocks(pg_url), KeyLocks(pg_url, wait_seconds=30)
    yield first, second
    first.close()
    second.close()


def waiting_for(url: str, key: str) -> int:
    """How many sessions wait for the lock on ``key`` right now (a bigint advisory lock is shown split in
    two halves, classid and objid)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks, (SELECT hashtextextended(%s, 0) AS h) k WHERE locktype = 'advisory'"
            " AND NOT granted AND objsubid = 1 AND classid = ((k.h >> 32) & 4294967295)::oid"
            " AND objid = (k.h & 4294967295)::oid", (NAMESPACE + key,)).fetchone()
    return int(row[0]) if row else 0


def unique(name: str) -> str:
    """A key no other test uses (the tests may run in parallel on one server, and locks span its schemas)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def free(url: str, key: str) -> bool:
    """Whether a third session could take the lock on ``key`` now (it lets go at once)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (NAMESPACE + key,)).fetchone()
    return bool(row and row[0])


def test_a_key_held_by_one_worker_makes_another_wait_until_it_lets_go(locks: tuple[KeyLocks, KeyLocks],
                                                                     pg_url: str) -> None:  # noqa: F811
    first, second = locks
    key, other = unique("codespar-api-down"), unique("codespar-web-down")
    got = threading.Event()

    def take() -> None:
        with second.hold(key):
            got.set()

    with first.hold(key):
        with second.hold(other):  # another key is not held up
            pass
        taker = threading.Thread(target=take)
        taker.start()
        wait_for(lambda: waiting_for(pg_url, key) == 1, 10, "the second worker to wait on the lock")
        assert not got.is_set()
        assert not free(pg_url, key)
    assert got.wait(10)  # it took the lock once the first let go
    taker.join(10)
    assert free(pg_url, key)  # and let go of it in turn


def test_the_lock_is_let_go_when_the_call_raises(locks: tuple[KeyLocks, KeyLocks], pg_url: str) -> None:  # noqa: F811
    first, _ = locks
    key = unique("k1")
    with pytest.raises(RuntimeError, match="PagerDuty blew up"), first.hold(key):
        assert not free(pg_url, key)
        raise RuntimeError("PagerDuty blew up")
    assert free(pg_url, key)


def test_a_dead_workers_lock_goes_with_its_connection(locks: tuple[KeyLocks, KeyLocks], pg_url: str) -> None:  # noqa: F811
    first, second = locks
    key = unique("k1")
    with first.hold(key):
        pid = first._connection().info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:  # as when its host dies: the session ends
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with second.hold(key):  # not held up by the dead session
            assert not free(pg_url, key)
    with first.hold(key):  # the broken connection is replaced on the next call
        assert not free(pg_url, key)


def test_waiting_past_the_limit_fails_like_an_outage_naming_the_key(pg_url: str) -> None:  # noqa: F811
    holder, impatient = KeyLocks(pg_url), KeyLocks(pg_url, wait_seconds=0.3)
    key = unique("codespar-api-down")
    try:
        with holder.hold(key), pytest.raises(QueueUnavailable) as caught, impatient.hold(key):
            raise AssertionError("the lock was taken twice")
    finally:
        holder.close()
        impatient.close()
    assert f"incident_key '{key}': another worker has held its lock" in str(caught.value)
    assert "the event is tried again" in str(caught.value)
    assert isinstance(caught.value, KeyBusy)  # one key's wait, not the database gone: the worker goes on


def test_a_key_whose_wait_ran_out_is_waited_for_briefly_until_this_process_takes_it_again(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Fifth review, item 2: each retry of an event whose key a frozen holder keeps waited the whole lock
    timeout again on the worker's one thread, holding up its other rows and its wake-ups each time. Sixth
    review, item 3: a bare try instead lost every time to other workers busy with the key, so the retry
    still waits, briefly, keeping its place behind them."""
    import engine.pagerduty.keylock as keylock
    monkeypatch.setattr(keylock, "STUCK_WAIT_SECONDS", 0.5)
    holder, impatient = KeyLocks(pg_url), KeyLocks(pg_url, wait_seconds=0.3)
    key = unique("frozen-holder")
    outcome: list[BaseException | None] = []

    def retry() -> None:
        try:
            with impatient.hold(key):
                outcome.append(None)
        except KeyBusy as exc:
            outcome.append(exc)

    try:
        with holder.hold(key):
            with pytest.raises(KeyBusy), impatient.hold(key):
                raise AssertionError("the lock was taken twice")
            impatient.wait_seconds = 60  # the retry's thread connects anew: a full wait would outlast the check
            thread = threading.Thread(target=retry)
            thread.start()
            wait_for(lambda: bool(outcome), 10, "the retry to give up after its brief wait")
            assert isinstance(outcome[0], KeyBusy)
            thread = threading.Thread(target=retry)
            thread.start()
            wait_for(lambda: waiting_for(pg_url, key) == 1, 10, "the next retry to wait in line for the key")
        thread.join(10)
        assert outcome[-1] is None  # the holder let go while it waited: it got the key
        assert key not in impatient._stuck  # taken once: its next wait is a whole one again
    finally:
        holder.close()
        impatient.close()


def test_a_database_that_refuses_the_keepalive_settings_still_gives_locks(
        pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """Fifth review, item 5: a pooler or proxy that refuses `SET tcp_keepalives_*` failed every lock
    connection, which stops every queue worker as if the database were down."""
    import engine.pagerduty.keylock as keylock
    monkeypatch.setattr(keylock, "KEEPALIVE_COUNT", "not-a-number")  # the server refuses the SET
    locks, key = KeyLocks(pg_url), unique("behind-a-proxy")
    try:
        with locks.hold(key):
            assert not free(pg_url, key)
    finally:
        locks.close()
    assert "refused the TCP keepalive settings" in caplog.text


def test_try_hold_takes_a_free_key_and_answers_false_at_once_for_a_held_one(
        locks: tuple[KeyLocks, KeyLocks], pg_url: str) -> None:  # noqa: F811
    first, second = locks  # the second would wait 30 s for a lock: try_hold must not
    key = unique("codespar-api-down")
    with first.hold(key), second.try_hold(key) as got:
        assert got is False
        assert waiting_for(pg_url, key) == 0  # it did not queue behind the holder
    with second.try_hold(key) as got:
        assert got is True
        assert not free(pg_url, key)
    assert free(pg_url, key)  # let go on the way out


def test_the_server_probes_the_lock_connection_so_a_vanished_host_loses_its_locks(
        locks: tuple[KeyLocks, KeyLocks]) -> None:
    first, _ = locks  # a host that dies without closing its TCP connection: only keepalives find it
    row = first._connection().execute("SHOW tcp_keepalives_idle").fetchone()
    assert row is not None and row[0] == str(KEEPALIVE_IDLE_SECONDS)


def test_an_unreachable_lock_database_is_queue_unavailable_without_the_password() -> None:
    secret = "s3cret-lock-pass"
    locks = KeyLocks(f"postgresql://pagerules:{secret}@127.0.0.1:1/nowhere")
    with pytest.raises(QueueUnavailable) as caught, locks.hold("k1"):
        raise AssertionError("held a lock with no database")
    assert "cannot connect to the lock database postgresql://pagerules@127.0.0.1:1/nowhere" in str(caught.value)
    assert secret not in str(caught.value)


class Replica:
    """What one pagerules process has: its own state connection, its own locks, one Live backend."""

    def __init__(self, fake: FakePagerDuty, url: str, locked: bool):
        config = live_config(fake, PAGERULES_RETRIES="0")
        self.state, self.locks = PgState(url), KeyLocks(url)
        self.live = Live(config, make_client(config), self.state)
        self.live.notifier.synchronous = True
        self.backend: Backend = KeyLocked(self.live, self.locks) if locked else self.live

    def close(self) -> None:
        self.locks.close()
        self.state.close()


def race(fake: FakePagerDuty, url: str, locked: bool, rounds: int) -> tuple[Counter[str], list[set[Status]]]:
    """Two replicas trigger one new key at the same moment, ``rounds`` times: POST /incidents per key,
    and the two outcomes of each round."""
    replicas = [Replica(fake, url, locked) for _ in range(2)]
    tag = unique(f"race-{locked}")
    barrier = threading.Barrier(2)
    outcomes: list[list[Status]] = [[] for _ in range(rounds)]
    errors: list[BaseException] = []

    def replica(n: int) -> None:
        try:
            for r in range(rounds):
                key = f"{tag}-{r}"
                action = TriggerAction("r", f"e{n}-{r}", key, f"{key} down", "high")
                barrier.wait(timeout=30)
                outcomes[r].append(replicas[n].backend.create(action).status)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            barrier.abort()

    fake.faults = {"latency_ms": 60}  # each call takes a while, as PagerDuty's do: the two calls overlap
    threads = [threading.Thread(target=replica, args=(n,)) for n in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        fake.faults = {}
        for one in replicas:
            one.close()
    assert not errors, errors
    posts = Counter(c["body"]["incident"]["incident_key"] for c in fake.calls("POST", "/incidents")
                    if c["body"]["incident"]["incident_key"].startswith(f"{tag}-"))
    return posts, [set(o) for o in outcomes]


def test_two_replicas_triggering_one_key_at_once_make_one_call_when_the_database_decides(
        fake: FakePagerDuty, pg_url: str) -> None:  # noqa: F811
    PgState(pg_url).close()
    rounds = 12
    posts, outcomes = race(fake, pg_url, locked=True, rounds=rounds)
    assert len(posts) == rounds and set(posts.values()) == {1}  # one call per key, never two
    assert outcomes == [{Status.CREATED, Status.DEDUPLICATED}] * rounds
    assert {len(ids) for ids in fake.by_key.values()} == {1} and len(fake.by_key) == rounds
    # Without the lock the same race calls twice (PagerDuty's duplicate-key answer saves it): the test can fail.
    unlocked, _ = race(fake, pg_url, locked=False, rounds=4)
    assert max(unlocked.values()) == 2


def test_a_resolve_waits_for_the_create_of_its_key(fake: FakePagerDuty, pg_url: str) -> None:  # noqa: F811
    PgState(pg_url).close()
    creator, resolver = Replica(fake, pg_url, True), Replica(fake, pg_url, True)
    key = unique("svc-down")
    results: list[Any] = []
    try:
        with creator.locks.hold(key):  # the creator is mid-call with the key
            def resolve() -> None:
                results.append(resolver.backend.resolve(ResolveAction("ok", "e2", key, "back")))
            thread = threading.Thread(target=resolve)
            thread.start()
            wait_for(lambda: waiting_for(pg_url, key) == 1, 10, "the resolve to wait on the lock")
            creator.live.create(TriggerAction("r", "e1", key, "svc down", "high"))
        thread.join(30)
    finally:
        creator.close()
        resolver.close()
    assert [r.status for r in results] == [Status.RESOLVED]  # it saw the incident the create opened
    assert fake.open_keys() == []


def test_the_locked_backend_still_takes_notes_for_flap_control(fake: FakePagerDuty, pg_url: str) -> None:  # noqa: F811
    PgState(pg_url).close()
    replica = Replica(fake, pg_url, True)
    key = unique("svc-flapping")
    try:
        assert isinstance(replica.backend, NoteTaker)  # the dispatcher asks so before noting a flapping key
        assert replica.backend.create(TriggerAction("r", "e1", key, "svc down", "high")).status is Status.CREATED
        with replica.locks.hold(key):  # nested in a call of the same key: the session's locks stack
            assert replica.backend.add_note(key, "flapping: the resolve waits") is None
        assert free(pg_url, key)
    finally:
        replica.close()
    (incident,) = fake.incidents.values()
    assert incident["notes"] == ["flapping: the resolve waits"]


def test_a_recovery_between_a_wake_ups_take_and_its_page_waits_and_resolves_the_page(
        fake: FakePagerDuty, pg_url: str) -> None:  # noqa: F811
    """Third review R1: worker A's wake-up takes a due for: hold; worker B's recovery for the key comes
    before A's create. B used to cancel the hold, find nothing open and answer cancelled_pending, then A
    paged: an incident open for a problem that had recovered. The wake-up now holds the key's turn from
    its take to its release, so B waits for it and resolves the page."""
    PgState(pg_url).close()
    a, b = Replica(fake, pg_url, True), Replica(fake, pg_url, True)
    key, clock = unique("checkout-5xx"), [1000.0]
    config = live_config(fake, PAGERULES_RETRIES="0")
    first, second = Dispatcher(config, a.backend, lambda: clock[0]), Dispatcher(config, b.backend, lambda: clock[0])
    recovered: list[list[Status]] = []

    def recover() -> None:
        recovered.append([o.status for o in second.handle(ResolveAction("ok", "e2", key, "5xx back to normal"))])

    recovery = threading.Thread(target=recover)
    take = a.state.take_pending

    def take_then_let_the_recovery_in(incident_key: str, until: float, lease_until: float) -> bool:
        taken = take(incident_key, until, lease_until)
        recovery.start()  # B's recovery, between A's take and A's create: it finishes or waits for A's turn
        wait_for(lambda: recovered or waiting_for(pg_url, key) == 1, 20, "the recovery to end or wait its turn")
        return taken

    a.state.take_pending = take_then_let_the_recovery_in  # type: ignore[method-assign]
    try:
        held = first.handle(TriggerAction("r", "e1", key, "checkout 5xx", "high", pending_for=60.0))
        assert [o.status for o in held] == [Status.PENDING]
        clock[0] += 61
        assert [o.status for o in first.fire_due()] == [Status.CREATED]
        recovery.join(30)
    finally:
        a.close()
        b.close()
    assert recovered == [[Status.RESOLVED]]  # it waited for the page, then resolved it
    assert fake.open_keys() == []


def test_a_wake_up_skips_a_key_whose_turn_is_held_elsewhere_and_pages_the_other_holds(
        fake: FakePagerDuty, pg_url: str, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """Fourth review, item 1: fire_due waited for each due key's turn before taking its hold. A session
    that kept a key's turn (a host that froze mid-decision) made every worker's wake-up wait out the lock
    timeout and fail like an outage on every step: no hold paged, no row claimed, all paging stopped. The
    wake-up now only tries the turn; a busy key stays due for a later round."""
    PgState(pg_url).close()
    replica = Replica(fake, pg_url, True)
    replica.locks.wait_seconds = 1.0  # any wait at all would show: the old code raised after it
    stuck, other, clock = unique("stuck"), unique("other"), [1000.0]
    config = live_config(fake, PAGERULES_RETRIES="0")
    dispatcher = Dispatcher(config, replica.backend, lambda: clock[0])
    frozen = psycopg.connect(pg_url, autocommit=True)  # the frozen host's session: it never lets go
    try:
        dispatcher.handle(TriggerAction("r", "e1", stuck, "stuck down", "high", pending_for=60.0))
        dispatcher.handle(TriggerAction("r", "e2", other, "other down", "high", pending_for=60.0))
        frozen.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (NAMESPACE + stuck,))
        clock[0] += 61
        for _ in range(2):  # the next round meets the same held turn, and still pages nothing twice
            assert [(o.status, o.incident_key) for o in dispatcher.fire_due()] in (
                [(Status.CREATED, other)], [])
        assert fake.open_keys() == [other]
        held = replica.state.pending(stuck)
        assert held is not None and held.until == 1060.0  # not taken: still due, as it was
        assert "is not sent yet" not in caplog.text  # a moment's wait is no news
        clock[0] += 120  # overdue by two minutes: a page that does not go out is never silent
        assert dispatcher.fire_due() == []
        assert f"incident_key '{stuck}': its held page, due at 1970-01-01T00:17:40Z, is not sent yet" in caplog.text
        frozen.close()  # the frozen host's session ends (its keepalives go unanswered)
        assert [(o.status, o.incident_key) for o in dispatcher.fire_due()] == [(Status.CREATED, stuck)]
        assert sorted(fake.open_keys()) == sorted([stuck, other])
    finally:
        frozen.close()
        replica.close()
