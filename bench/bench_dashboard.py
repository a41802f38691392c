"""The dashboard's page with 100,000 open incidents against 100: render time and its ratio, in one run.

The app (engine/web) runs in this process on a live backend aimed at the project's fake PagerDuty
(tests/fake_pagerduty.py, for who is on call), over a state file seeded with State.record_open_many:
incidents of every severity over 1,000 projects. The paced refresh from PagerDuty is held off, so
the figure is the page alone (bench_open_incidents.py measures a reconcile round). Each size: a
signed-in GET / (every project) and GET /?severity=critical, best of 5; and, apart, what reading
every open incident from the state costs (State.open_incidents), the part a paged query would remove.

    python bench/bench_dashboard.py
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakectl import live_env, start_fake

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.evaluation.actions import OpenIncident  # noqa: E402
from engine.pagerduty.backend import live_backend  # noqa: E402
from engine.pagerduty.state import State  # noqa: E402
from engine.severity import SEVERITIES  # noqa: E402
from engine.web.app import create_app  # noqa: E402

SIZES = (100, 100_000)
REPOS = 1000
TOKEN = "bench-dashboard-token-0123456789"


def seed(path: Path, count: int) -> None:
    state = State(str(path))
    state.record_open_many((OpenIncident(f"bench-acme-p{n % REPOS}-build-{n}",
                                         {"kind": "build", "repo": f"acme/p{n % REPOS}", "branch": "main"},
                                         "build-failed", SEVERITIES[n % len(SEVERITIES)],
                                         f"acme/p{n % REPOS} CI build #{n} failed on main", f"PINC{n:07d}")
                            for n in range(count)), time.time() - 86400 + count / 10_000, "bench", "seed")
    state.close()


def best_of(rounds: int, work: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def measure(url: str, size: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        state_path = Path(tmp) / "state.db"
        seed(state_path, size)
        env = live_env(url, PAGERULES_API_TOKEN=TOKEN, PAGERULES_STATE_PATH=str(state_path))
        config = load_config(None, env=env)
        backend = live_backend(config, str(state_path), "bench")
        app = create_app(config, backend, os.path.join(tmp, "events"))
        app.extensions["pagerules"].refresher.next_at = float("inf")  # the page alone, no reconcile round
        client = app.test_client()
        assert client.post("/login", data={"token": TOKEN}).status_code == 302

        def get(path: str) -> Callable[[], None]:
            def run() -> None:
                response = client.get(path)
                assert response.status_code == 200, response.status_code
            return run
        run_all, run_critical = get("/"), get("/?severity=critical")
        run_all()  # templates compiled, on-call asked once: what every later load finds ready
        page = client.get("/").get_data(as_text=True)
        figures = {"all": best_of(rounds, run_all), "critical": best_of(rounds, run_critical),
                   "read": best_of(rounds, lambda: backend.state.open_incidents()),
                   "rows": float(page.count('<tr class="incident"')), "bytes": float(len(page))}
        backend.state.close()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="page loads of each kind; the best is kept")
    args = parser.parse_args()
    fake, url = start_fake(ROOT)
    try:
        results = {size: measure(url, size, args.rounds) for size in SIZES}
    finally:
        fake.terminate()
        fake.wait()
    print(f"dashboard page, best of {args.rounds} (refresh from PagerDuty held off):")
    for size, r in results.items():
        print(f"  {size:>7,} open: GET / {r['all'] * 1000:8.1f} ms ({r['rows']:.0f} rows, {r['bytes'] / 1024:.0f} KiB)"
              f"   GET /?severity=critical {r['critical'] * 1000:8.1f} ms   reading every open incident "
              f"{r['read'] * 1000:8.1f} ms")
    small, large = results[SIZES[0]], results[SIZES[1]]
    for kind in ("all", "critical"):
        print(f"  render time with {SIZES[1]:,} open / with {SIZES[0]:,}, {kind}: {large[kind] / small[kind]:.1f}")
    print(f"  reading every open incident at {SIZES[1]:,} (State.open_incidents, what a page did before it "
          f"was paged): {large['read'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
