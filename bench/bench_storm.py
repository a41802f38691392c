"""An alert storm through live `process`: PagerDuty calls made, events/s and wall time.

10,000 events over 10 incident keys go through `pagerules process` against the
project's fake PagerDuty (tests/fake_pagerduty.py) on loopback, from a fresh
state file; then again with 100 ms of latency injected in the fake. Goal
(issue 3): 10 creates and no more than 20 calls in all. The same events
through `process --dry-run` in the same run are the baseline for the rate.
Then the storm goes through a route (issue 14), a REST one and an Events API v2
one: the calls of each (goal: 10 incidents opened, no more than 20 calls) and
its rate as a ratio of the REST storm's without routes (no latency) in the same
run; a route costs the labels every trigger renders to choose it.

    python bench/bench_storm.py
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fakectl import control, live_env, route_config, start_fake

ROOT = Path(__file__).resolve().parent.parent
EVENTS, KEYS = 10_000, 10


def storm() -> str:
    lines = []
    for n in range(EVENTS):
        lines.append(json.dumps({"type": "build", "id": f"s{n}", "repo": f"acme/service-{n % KEYS}",
                                 "branch": "main", "build_number": 500, "status": "failed"}))
    return "\n".join(lines) + "\n"



def run(args: list[str], stdin: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], input=stdin, capture_output=True,
                          text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"process failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    events = storm()
    fake, url = start_fake(ROOT)
    try:
        env = live_env(url, PAGERDUTY_EVENTS_URL=url)
        dry = run(["process", "--dry-run"], events, env)
        print(f"storm: {EVENTS:,} events over {KEYS} keys")
        print(f"  baseline, --dry-run            : {EVENTS / dry:>8,.0f} events/s  {dry:6.2f} s")
        seen = 0
        rest_wall = 0.0
        for latency in (0, 100):
            control(url, "/_fake/faults", {"latency_ms": latency})
            with tempfile.TemporaryDirectory() as tmp:
                wall = run(["process", "--state", str(Path(tmp) / "state.db")],
                           events.replace('"build_number": 500', f'"build_number": {500 + latency}'), env)
            calls = control(url, "/_fake/requests")["requests"][seen:]
            seen += len(calls)
            creates = sum(1 for c in calls if c["method"] == "POST" and c["path"] == "/incidents")
            verdict = "met" if creates == KEYS and len(calls) <= 2 * KEYS else "NOT met"
            print(f"  live, {latency:>3} ms fake latency    : {EVENTS / wall:>8,.0f} events/s  {wall:6.2f} s  "
                  f"{len(calls)} calls ({creates} creates; goal {KEYS} creates, <= {2 * KEYS} calls: {verdict})  "
                  f"{dry / wall:.0%} of the dry-run rate")
            rest_wall = rest_wall or wall
        control(url, "/_fake/faults", {})
        routed: dict[str, float] = {}
        for kind, build_number in (("REST", 700), ("Events API v2", 800)):
            with tempfile.TemporaryDirectory() as tmp:
                config = route_config(Path(tmp), events_api=kind != "REST")
                routed[kind] = run(["process", "--config", str(config), "--state", str(Path(tmp) / "state.db")],
                                   events.replace('"build_number": 500', f'"build_number": {build_number}'),
                                   {**env, **config.env})
            calls = control(url, "/_fake/requests")["requests"][seen:]
            seen += len(calls)
            opened = sum(1 for c in calls if c["method"] == "POST" and (
                c["path"] == "/incidents" or c["path"] == "/v2/enqueue" and c["body"]["event_action"] == "trigger"))
            verdict = "met" if opened == KEYS and len(calls) <= 2 * KEYS else "NOT met"
            wall = routed[kind]
            print(f"  live, {kind + ' route':<22} : {EVENTS / wall:>8,.0f} events/s  {wall:6.2f} s  "
                  f"{len(calls)} calls ({opened} opened; goal {KEYS}, <= {2 * KEYS} calls: {verdict})  "
                  f"{rest_wall / wall:.2f}x the REST storm's rate (no routes)")
        print(f"  Events API v2 route / REST route rate: {routed['REST'] / routed['Events API v2']:.2f}x")
    finally:
        fake.terminate()


if __name__ == "__main__":
    main()
