"""Throughput and memory of `process --dry-run`, as ratios against a baseline in the same run.

Baseline: a plain `json.loads` + `json.dumps` loop over the same lines, run the
same way (a fresh Python process reading the file on stdin, writing to
/dev/null). Goal (issue 17, raised from issue 2's 25%): pagerules reaches at least 50% of the
baseline's events per second, and its peak memory does not grow with input size. Beside the wall
time it gives the ratio of CPU seconds (user + system of the child), which the other load of a
shared machine moves far less.

    python bench/bench_process.py            # 100k lines, plus 1M for memory
    python bench/bench_process.py --quick    # 20k and 100k: a quicker look
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "import json,sys\nw=sys.stdout.write\nfor line in sys.stdin:\n    w(json.dumps(json.loads(line))+'\\n')\n"
# Runs a command and prints the child's peak resident set in KiB (Linux ru_maxrss).
RSS = ("import resource,subprocess,sys\n"
       "subprocess.run(sys.argv[1:],stdin=sys.stdin,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\n"
       "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def events(count: int, seed: int = 7):  # type: ignore[no-untyped-def]
    """A realistic mix: half CI builds (1 in 5 failing, some off main), half deploy health checks.

    Each repo has a current version that moves on now and then, so incidents
    open and get resolved as they would in production.
    """
    rng = random.Random(seed)
    repos = [f"acme/service-{n}" for n in range(50)]
    releases = dict.fromkeys(repos, 0)
    for n in range(count):
        repo = rng.choice(repos)
        if n % 2 == 0:
            yield {"type": "build", "id": f"b{n}", "repo": repo, "branch": rng.choice(["main", "main", "dev"]),
                   "build_number": 1000 + n // 100, "status": "failed" if rng.random() < 0.2 else "passed",
                   "url": f"https://ci.example.com/b/{n}"}
        else:
            spike = rng.random() < 0.1
            passed = 10 if rng.random() < 0.7 else rng.randint(0, 9)
            yield {"type": "deploy.health", "id": f"d{n}", "repo": repo,
                   "deploy": {"version": f"v1.{releases[repo]}.0", "environment": "production"},
                   "error_rate": round(rng.uniform(0.05, 0.09) if spike else rng.uniform(0.001, 0.012), 4),
                   "baseline_error_rate": 0.01, "sustained_minutes": rng.choice([0, 5, 12]),
                   "checks": {"passed": passed, "total": 10}}
            if passed == 10 and not spike and rng.random() < 0.1:
                releases[repo] += 1  # the next release ships once this one is confirmed healthy


def write_events(path: Path, count: int) -> None:
    with path.open("w") as out:
        for event in events(count):
            out.write(json.dumps(event) + "\n")


def timed(cmd: list[str], path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    with path.open() as stdin:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:  # a crash would look like a record
        sys.exit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr.decode()[-1000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def peak_kib(cmd: list[str], path: Path) -> int:
    with path.open() as stdin:
        out = subprocess.run([sys.executable, "-c", RSS, *cmd], stdin=stdin, capture_output=True, text=True,
                             check=True)
    return int(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    args = parser.parse_args()
    small, large = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
    ours = [sys.executable, str(ROOT / "cli.py"), "process", "--dry-run"]
    base = [sys.executable, "-c", BASELINE]
    with tempfile.TemporaryDirectory() as tmp:
        small_file, large_file = Path(tmp) / "small.jsonl", Path(tmp) / "large.jsonl"
        write_events(small_file, small)
        write_events(large_file, large)
        # interleave the runs so machine noise hits both sides alike; keep each side's best
        base_s = ours_s = base_cpu = ours_cpu = float("inf")
        for _ in range(args.repeat):
            wall, cpu = timed(base, small_file)
            base_s, base_cpu = min(base_s, wall), min(base_cpu, cpu)
            wall, cpu = timed(ours, small_file)
            ours_s, ours_cpu = min(ours_s, wall), min(ours_cpu, cpu)
        print(f"throughput over {small:,} JSON lines (best of {args.repeat}):")
        print(f"  baseline json.loads+dumps : {small / base_s:>10,.0f} events/s  ({base_s:.2f} s, "
              f"{base_cpu:.2f} s CPU)")
        print(f"  pagerules process --dry-run: {small / ours_s:>10,.0f} events/s  ({ours_s:.2f} s, "
              f"{ours_cpu:.2f} s CPU)")
        ratio = base_s / ours_s
        print(f"  ratio: {ratio:.1%} of baseline, {base_cpu / ours_cpu:.1%} in CPU seconds "
              f"(goal >= 50%: {'met' if ratio >= 0.5 else 'NOT met'})")
        mem_small, mem_large = peak_kib(ours, small_file), peak_kib(ours, large_file)
        growth = mem_large / mem_small
        print("peak memory of pagerules process --dry-run:")
        print(f"  {small:>9,} lines: {mem_small / 1024:7.1f} MiB")
        print(f"  {large:>9,} lines: {mem_large / 1024:7.1f} MiB")
        print(f"  ratio: {growth:.2f}x for {large // small}x the input "
              f"(goal: flat, under 1.5x: {'met' if growth < 1.5 else 'NOT met'})")
        os.sync()


if __name__ == "__main__":
    main()
