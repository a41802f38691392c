"""Peak memory of `process --dry-run` on the same events as JSON lines and as a pretty-printed array.

A pretty-printed array used to be held whole (22 MB of input -> 176 MiB RSS, about 8x the
lines); it is now decoded an item at a time, so the ratio array/lines should be about 1.
Each run is a fresh Python process reading the file on stdin; its peak RSS comes from wait4.

    python bench/bench_memory.py             # about 20 MB of events
    python bench/bench_memory.py --mb 5      # a quicker look
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_process import ROOT, RSS, events  # noqa: E402


def peak_rss_kib(path: Path) -> tuple[int, float]:
    """(peak resident set in KiB, seconds) of one `process --dry-run` run over ``path``.

    Through a small wrapper process (bench_process.RSS): a child forked straight from this one would
    start with this process's pages, the generated events, counted in its peak."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
    started = time.perf_counter()
    with path.open("rb") as stdin:
        out = subprocess.run([sys.executable, "-c", RSS, sys.executable, str(ROOT / "cli.py"), "process",
                              "--dry-run"], stdin=stdin, capture_output=True, text=True, env=env, cwd=ROOT,
                             check=True, timeout=120)
    return int(out.stdout.strip()), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="size of the JSON-lines input (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines_path, array_path = Path(tmp, "events.jsonl"), Path(tmp, "events.json")
        size, items = 0, []
        with lines_path.open("w") as out:
            for event in events(10**9):
                text = json.dumps(event)
                out.write(text + "\n")
                items.append(event)
                size += len(text) + 1
                if size >= args.mb * 1e6:
                    break
        array_path.write_text(json.dumps(items, indent=2))
        del items
        lines_kib, lines_s = peak_rss_kib(lines_path)
        array_kib, array_s = peak_rss_kib(array_path)
        mb = lambda p: p.stat().st_size / 1e6  # noqa: E731
        print(f"JSON lines:   {mb(lines_path):6.1f} MB -> peak RSS {lines_kib / 1024:6.1f} MiB ({lines_s:.1f} s)")
        print(f"pretty array: {mb(array_path):6.1f} MB -> peak RSS {array_kib / 1024:6.1f} MiB ({array_s:.1f} s)")
        print(f"ratio array/lines: {array_kib / lines_kib:.2f} (goal: about 1; was about 8)")


if __name__ == "__main__":
    main()
