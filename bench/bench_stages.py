"""Where the time of `process --dry-run` goes, per event, against the json round-trip of bench_process.py.

In this process, over bench_process.py's mix (half builds, half deploy health checks): the same path
`process` runs (read_events -> Pipeline -> Outcome.to_line -> one JSON encoder), with a clock read
around each stage, so each figure is that stage's cost in place (the clock reads, about 0.1 us each,
are left in). Beside it, the baseline loop (json.loads + json.dumps per line) and the start-up of a
`process --dry-run` with no input, which a run pays once. Best of --repeat runs each.

    python bench/bench_stages.py                 # 20,000 lines
    python bench/bench_stages.py --lines 100000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_process import ROOT, events  # noqa: E402

sys.path.insert(0, str(ROOT))
from engine.config import load_config  # noqa: E402
from engine.dispatch.dispatcher import Dispatcher, DryRun  # noqa: E402
from engine.dispatch.outcomes import Outcome  # noqa: E402
from engine.evaluation.evaluate import evaluate  # noqa: E402
from engine.events.stream import Parsed, read_events  # noqa: E402
from engine.language.loading import load_ruleset  # noqa: E402

STAGES = ("read: strict JSON decode, Parsed", "schema check", "evaluate: rules, templates",
          "dispatch: gates, dry-run plan", "output line (to_line)", "JSON encode + write", "loop and tally")


def stages(lines: list[str], ruleset: Any, config: Any) -> dict[str, float]:
    """Seconds per stage over ``lines``, one pass, in place."""
    spent = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter
    types = ruleset.event_types
    dispatcher = Dispatcher(config, DryRun())
    view, handle = dispatcher.view, dispatcher.handle
    encode = json.JSONEncoder(ensure_ascii=False).encode
    out = open(os.devnull, "w")  # noqa: SIM115 - closed below
    write = out.write

    def timed_read() -> Iterator[Parsed]:
        reader = read_events(lines, "stdin")
        while True:
            started = clock()
            item = next(reader, None)
            spent[STAGES[0]] += clock() - started
            if item is None:
                return
            yield item
    whole = clock()
    for item in timed_read():
        event = item.event
        assert event is not None
        t0 = clock()
        types[event["type"]].is_valid(event)  # evaluate checks again: the quick check answers at once
        t1 = clock()
        actions = evaluate(event, ruleset, view)
        t2 = clock()
        found = [outcome for action in actions for outcome in handle(action)]
        t3 = clock()
        made = [Outcome.to_line(o) for o in found]
        t4 = clock()
        for line in made:
            write(encode(line) + "\n")
        t5 = clock()
        spent[STAGES[1]] += t1 - t0
        spent[STAGES[2]] += t2 - t1
        spent[STAGES[3]] += t3 - t2
        spent[STAGES[4]] += t4 - t3
        spent[STAGES[5]] += t5 - t4
    spent[STAGES[6]] = clock() - whole - sum(spent.values())
    out.close()
    return spent


def baseline(lines: list[str]) -> float:
    with open(os.devnull, "w") as out:
        write = out.write
        started = time.perf_counter()
        for line in lines:
            write(json.dumps(json.loads(line)) + "\n")
        return time.perf_counter() - started


def startup() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "cli.py"), "process", "--dry-run"], stdin=subprocess.DEVNULL,
                   capture_output=True, check=True, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; the best is kept")
    args = parser.parse_args()
    lines = [json.dumps(e) + "\n" for e in events(args.lines)]
    config = load_config(None, env={k: v for k, v in os.environ.items()
                                    if not k.startswith(("PAGERDUTY_", "PAGERULES_"))})
    ruleset = load_ruleset(config)
    best = dict.fromkeys(STAGES, float("inf"))
    base, start = float("inf"), float("inf")
    for _ in range(args.repeat):
        base = min(base, baseline(lines))
        for name, seconds in stages(lines, ruleset, config).items():
            best[name] = min(best[name], seconds)
        start = min(start, startup())
    n = len(lines)
    us = {name: seconds / n * 1e6 for name, seconds in best.items()}
    base_us = base / n * 1e6
    print(f"per event over {n:,} lines (best of {args.repeat}; the baseline json.loads+dumps: {base_us:.1f} us):")
    for name in STAGES:
        print(f"  {name:34s} {us[name]:6.1f} us  {us[name] / base_us:5.2f}x the baseline")
    total = sum(us.values())
    print(f"  {'all stages':34s} {total:6.1f} us  {total / base_us:5.2f}x the baseline")
    print(f"  start-up of process --dry-run (once a run): {start:.2f} s = {start / 100_000 * 1e6:.1f} us an event "
          "over 100k lines")
    goal = 2 * base_us  # 50% of the baseline's events/s: twice its time per event
    print(f"  the 50% goal allows {goal:.1f} us an event, start-up included; this run needs "
          f"{total + start / 100_000 * 1e6:.1f} us at 100k lines ({base_us / (total + start / 100_000 * 1e6):.1%})")
    io_us = us[STAGES[0]] + us[STAGES[5]] + start / 100_000 * 1e6
    print(f"  reading, writing and start-up alone take {io_us:.1f} us ({io_us / goal:.0%} of what the goal allows), "
          f"leaving {goal - io_us:.1f} us for the rest, which takes {total - us[STAGES[0]] - us[STAGES[5]]:.1f} us")


if __name__ == "__main__":
    main()
