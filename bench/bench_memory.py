"""Memory of pagerules as rules and input grow, as ratios measured in one run (issues 2 and 17).

1. Rules: peak RSS of a fresh `process --dry-run` on no events with the shipped rules, then with 10,000
   more rules of type build (bench_rules.py's files); and what loading those rules holds (tracemalloc).
2. Events: peak RSS of `process --dry-run` over 100k and over 1M JSON lines (bench_process.py's mix);
   goal: flat, the 1M run within 1.1x of the 100k run (a leak of even 100 bytes an event would show
   as +86 MiB).
3. Input shape: the same ~20 MB of events as JSON lines and as one pretty-printed array; the array is
   decoded an item at a time, so the ratio should be about 1 (it was about 8).

Each run is a fresh Python process reading the file on stdin; its peak RSS comes from wait4.

    python bench/bench_memory.py             # all three, about two minutes
    python bench/bench_memory.py --quick     # 20k vs 200k events, 5 MB of input
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_process import ROOT, RSS, events, write_events  # noqa: E402
from bench_rules import config_for, rules_dir  # noqa: E402

from engine.language.loading import load_ruleset  # noqa: E402


def peak_rss_kib(path: Path | None, extra_env: dict[str, str] | None = None) -> tuple[int, float]:
    """(peak resident set in KiB, seconds) of one `process --dry-run` run over ``path`` (None: no events).

    Through a small wrapper process (bench_process.RSS): a child forked straight from this one would
    start with this process's pages, the generated events, counted in its peak."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
    env.update(extra_env or {})
    started = time.perf_counter()
    with (path.open("rb") if path else open(os.devnull, "rb")) as stdin:
        out = subprocess.run([sys.executable, "-c", RSS, sys.executable, str(ROOT / "cli.py"), "process",
                              "--dry-run"], stdin=stdin, capture_output=True, text=True, env=env, cwd=ROOT,
                             check=True, timeout=600)
    return int(out.stdout.strip()), time.perf_counter() - started


def mib(kib: float) -> str:
    return f"{kib / 1024:6.1f} MiB"


def rules_memory(tmp: Path, extra: int) -> None:
    shipped, more = rules_dir(tmp, 0), rules_dir(tmp, extra)
    base_kib, _ = peak_rss_kib(None, {"PAGERULES_RULES_DIR": str(shipped)})
    more_kib, more_s = peak_rss_kib(None, {"PAGERULES_RULES_DIR": str(more)})
    print("1. rules: peak RSS of a fresh `process --dry-run` on no events")
    print(f"   shipped rules          : {mib(base_kib)}")
    print(f"   + {extra:,} build rules : {mib(more_kib)}  ({more_s:.1f} s)  ratio {more_kib / base_kib:.2f}, "
          f"{(more_kib - base_kib) / extra:.1f} KiB a rule")
    config = config_for(more)
    gc.collect()
    tracemalloc.start()
    ruleset = load_ruleset(config)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"   load_ruleset of {len(ruleset.all_rules()):,} rules (tracemalloc): holds {held / 2**20:.1f} MiB, "
          f"peak {peak / 2**20:.1f} MiB while loading")


def events_memory(tmp: Path, small: int, large: int) -> None:
    small_file, large_file = tmp / "small.jsonl", tmp / "large.jsonl"
    write_events(small_file, small)
    write_events(large_file, large)
    small_kib, small_s = peak_rss_kib(small_file)
    large_kib, large_s = peak_rss_kib(large_file)
    growth = large_kib / small_kib
    print("2. events: peak RSS of `process --dry-run` (shipped rules)")
    print(f"   {small:>9,} lines: {mib(small_kib)}  ({small_s:.1f} s)")
    print(f"   {large:>9,} lines: {mib(large_kib)}  ({large_s:.1f} s)")
    print(f"   ratio {growth:.2f} for {large // small}x the events (goal: flat, <= 1.1: "
          f"{'met' if growth <= 1.1 else 'NOT met'})")


def shape_memory(tmp: Path, megabytes: float) -> None:
    lines_path, array_path = tmp / "events.jsonl", tmp / "events.json"
    size, items = 0, []
    with lines_path.open("w") as out:
        for event in events(10**9):
            text = json.dumps(event)
            out.write(text + "\n")
            items.append(event)
            size += len(text) + 1
            if size >= megabytes * 1e6:
                break
    array_path.write_text(json.dumps(items, indent=2))
    del items
    lines_kib, lines_s = peak_rss_kib(lines_path)
    array_kib, array_s = peak_rss_kib(array_path)
    mb = lambda p: p.stat().st_size / 1e6  # noqa: E731
    print("3. input shape: the same events as JSON lines and as a pretty-printed array")
    print(f"   JSON lines:   {mb(lines_path):6.1f} MB -> peak RSS {mib(lines_kib)} ({lines_s:.1f} s)")
    print(f"   pretty array: {mb(array_path):6.1f} MB -> peak RSS {mib(array_kib)} ({array_s:.1f} s)")
    print(f"   ratio array/lines: {array_kib / lines_kib:.2f} (goal: about 1; was about 8)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k vs 200k events and 5 MB of input")
    parser.add_argument("--rules", type=int, default=10_000, help="extra build rules (default 10,000)")
    parser.add_argument("--mb", type=float, help="size of the JSON-lines input for 3. (default 20, quick 5)")
    args = parser.parse_args()
    small, large = (20_000, 200_000) if args.quick else (100_000, 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        rules_memory(Path(tmp), args.rules)
        events_memory(Path(tmp), small, large)
        shape_memory(Path(tmp), args.mb or (5.0 if args.quick else 20.0))


if __name__ == "__main__":
    main()
