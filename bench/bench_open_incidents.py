"""Live `process` with 100,000 open incidents against 100: events/s, their ratio, and one lookup's cost.

The same events go through `pagerules process` (a subprocess) against the project's
fake PagerDuty (tests/fake_pagerduty.py) on loopback, twice: with the state file
and the fake holding 100 open build incidents, then 100,000 (over 1,000 repos,
seeded with State.record_open_many in one transaction and POST /_fake/seed). The
mix: half repeats of open keys (deduplicated in the state, no call), three in ten
failed builds with new keys (a create each), one in ten a repeat of those, one in
ten a passing build that resolves its repo's open incidents by label. Goal (issue
17): events/s with 100,000 open / with 100 >= 0.8. It also times one dedup lookup
(StateView.get) and one label resolve (any_with per label, then select) at both sizes, and
counts the calls of one reconcile round after a first one (5 incidents resolved and 5
acknowledged by hand in between, through the REST API as a person would): a round costs calls
in proportion to what changed, so the ratio of calls at 100,000 open / at 100 should be 1.
The first round of a process checks every open incident (one call each); it is not run here
at 100,000, its cost is that by construction.

    python bench/bench_open_incidents.py            # 2,000 events
    python bench/bench_open_incidents.py --events 5000
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fakectl import control, live_env, start_fake

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.evaluation.actions import OpenIncident  # noqa: E402
from engine.pagerduty.backend import live_backend  # noqa: E402
from engine.pagerduty.state import State, StateView  # noqa: E402

SIZES = (100, 100_000)
SEED_REPOS, LIVE_REPOS, REPEATED = 1000, 20, 50  # repeats hit the first 50 seeded keys, open at both sizes
PREFIX = "bench"  # PAGERDUTY_DEDUP_KEY_PREFIX, so the seeded keys are the ones the rules compute
PROBE = {"kind": ("build",), "repo": ("acme/probe",), "branch": ("main",)}


def seeded(count: int) -> list[OpenIncident]:
    """``count`` open builds as the build-failed rule records them; the last is the probe's, alone on its repo."""
    out = []
    for n in range(count - 1):
        repo = f"acme/seed-{n % SEED_REPOS}"
        out.append(OpenIncident(f"{PREFIX}-acme-seed-{n % SEED_REPOS}-build-{n}",
                                {"kind": "build", "repo": repo, "branch": "main"}, "build-failed", "high",
                                f"{repo} CI build #{n} failed on main"))
    out.append(OpenIncident(f"{PREFIX}-acme-probe-build-1", {"kind": "build", "repo": "acme/probe", "branch": "main"},
                            "build-failed", "high", "acme/probe CI build #1 failed on main"))
    return out


def mix(count: int) -> tuple[str, int, int]:
    """The events (JSON lines), how many creates and how many resolves they should make."""
    lines, creates, resolves, open_live, build = [], 0, 0, {}, 10_000  # type: ignore[var-annotated]
    for n in range(count):
        slot, live = n % 10, f"acme/live-{(n // 10) % LIVE_REPOS}"
        if slot < 5:  # a repeat of an open key
            seed = (n // 10 * 5 + slot) % REPEATED
            event = {"repo": f"acme/seed-{seed % SEED_REPOS}", "build_number": seed, "status": "failed"}
        elif slot < 8:  # a new key
            build += 1
            event = {"repo": live, "build_number": build, "status": "failed"}
            creates += 1
            open_live[live] = open_live.get(live, 0) + 1
        elif slot == 8:  # a repeat of the newest key
            event = {"repo": live, "build_number": build, "status": "failed"}
        else:  # the repo's build passes: its open incidents are resolved by label
            event = {"repo": live, "build_number": build + 1, "status": "passed"}
            resolves += open_live.pop(live, 0)
        lines.append(json.dumps({"type": "build", "id": f"e{n}", "branch": "main", **event}))
    return "\n".join(lines) + "\n", creates, resolves



def seed(url: str, path: Path, count: int) -> float:
    """Open ``count`` incidents in the fake and record them in a new state file; seconds it took."""
    started = time.perf_counter()
    incidents = seeded(count)
    ids: list[str] = []
    for at in range(0, count, 20_000):
        chunk = incidents[at:at + 20_000]
        ids += control(url, "/_fake/seed", {"incidents": [{"incident_key": i.incident_key, "title": i.title}
                                                           for i in chunk]})["ids"]
    state = State(str(path))
    state.record_open_many((OpenIncident(i.incident_key, i.labels, i.rule, i.severity, i.title, incident_id)
                            for i, incident_id in zip(incidents, ids, strict=True)), time.time(), "bench", "seed")
    state.close()
    return time.perf_counter() - started


def per_call(path: Path) -> tuple[float, float]:
    """Microseconds of one dedup lookup and one label resolve (the probe's one incident), best of 5 rounds."""
    view = StateView(State(str(path)))
    key = f"{PREFIX}-acme-seed-1-build-1"

    def lookup() -> None:
        view.get(key)

    def resolve() -> None:
        if all(view.any_with(name, values) for name, values in PROBE.items()):
            assert len(view.select(PROBE)) == 1
    results = []
    work: Callable[[], None]
    for work, rounds in ((lookup, 2000), (resolve, 500)):
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(rounds):
                work()
            best = min(best, (time.perf_counter() - started) / rounds)
        results.append(best * 1e6)
    view.state.close()
    return results[0], results[1]


def reconcile_calls(url: str, state: Path, env: dict[str, str]) -> tuple[int, dict[str, int]]:
    """Calls of one reconcile round after a first (primed, as if it had just run), with 5 seeded
    incidents resolved and 5 acknowledged by hand; and the round's counts."""
    config = load_config(None, env=env)
    backend = live_backend(config, str(state))
    backend.reconciler.since = time.time()  # a first round just ended
    for n in range(1, 11):  # the first seeded incidents are PINC0001..: open at both sizes
        status = "resolved" if n <= 5 else "acknowledged"
        backend.client.set_status(f"PINC{n:04d}", status)
    before = len(control(url, "/_fake/requests")["requests"])
    counts = backend.reconcile()
    calls = len(control(url, "/_fake/requests")["requests"]) - before
    backend.state.close()
    return calls, counts


def run(events: str, state: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "process", "--state", str(state)], input=events,
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"process failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    events, creates, resolves = mix(args.events)
    print(f"open incidents: {args.events:,} events through live `process` (5 in 10 repeats of open keys, "
          f"{creates} new keys, {resolves} incidents resolved by label)")
    measured = [measure(size, events, creates, resolves) for size in SIZES]
    rates, rounds = [m[0] for m in measured], [m[1] for m in measured]
    print(f"  reconcile calls per round with {SIZES[1]:,} open / with {SIZES[0]:,}: {rounds[1] / rounds[0]:.2f} "
          f"({rounds[1]} / {rounds[0]}; one call per open incident would be {SIZES[1] / SIZES[0]:,.0f})")
    ratio = rates[1] / rates[0]
    print(f"  events/s with {SIZES[1]:,} open / with {SIZES[0]:,}: {ratio:.2f} "
          f"(goal >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")


def measure(size: int, events: str, creates: int, resolves: int) -> tuple[float, int]:
    """One run against a fresh fake and state holding ``size`` open incidents; its events/s and the
    calls of one reconcile round."""
    fake, url = start_fake(ROOT)
    try:
        env = live_env(url, PAGERDUTY_DEDUP_KEY_PREFIX=PREFIX)
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp) / "state.db"
            seeding = seed(url, state, size)
            wall = run(events, state, env)
            lookup, select = per_call(state)
            calls = control(url, "/_fake/requests")["requests"]
            round_calls, counts = reconcile_calls(url, state, env)
        made = sum(1 for c in calls if c["method"] == "POST" and c["path"] == "/incidents")
        closed = sum(1 for c in calls if c["method"] == "PUT")
        check = "as expected" if (made, closed) == (creates, resolves) else f"EXPECTED {creates}/{resolves}"
        rate = events.count("\n") / wall
        print(f"  {size:>7,} open: {rate:>6,.0f} events/s  {wall:6.2f} s  {len(calls)} calls "
              f"({made} creates, {closed} resolves: {check})  dedup lookup {lookup:5.1f} us  "
              f"label resolve {select:6.1f} us  (seeded in {seeding:.1f} s)")
        print(f"  {size:>7,} open: a reconcile round made {round_calls} calls, recorded {counts['resolved']} "
              f"resolved and {counts['acknowledged']} acknowledged")
        return rate, round_calls
    finally:
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    main()
