"""The watch daemon against the fake PagerDuty: latency, throughput, memory.

1. Latency from a file's rename into the events folder to its create call
   reaching the fake: median and p99 over 200 files (goal: median < 100 ms).
2. Throughput: 10,000 events in 1,000 files renamed in at once, until the last
   is in processed/; the baseline is live `process` on the same events as one
   stream, in the same run.
3. Memory: the daemon's resident set after 10,000 and after 100,000 events of
   a soak (goal: flat).

    python bench/bench_watch.py
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fakectl import control

ROOT = Path(__file__).resolve().parent.parent



def build(n: int, repo: str = "acme/bench", status: str = "failed") -> dict:  # type: ignore[type-arg]
    return {"type": "build", "id": f"e{n}", "repo": repo, "branch": "main", "build_number": n, "status": status}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_pagerduty.py")],
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.fake.stdout.readline().strip()  # type: ignore[union-attr]
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PAGERULES_"))}
        self.env = {**clean, "PAGERDUTY_API_TOKEN": "fake-token-0123456789",
                    "PAGERDUTY_FROM_EMAIL": "oncall-bot@example.com", "PAGERDUTY_SERVICE_ID": "PSVC001",
                    "PAGERDUTY_ESCALATION_POLICY_ID": "PEP0001", "PAGERDUTY_API_URL": self.url}
        self.daemon: subprocess.Popen[bytes] | None = None

    def start_daemon(self, name: str) -> Path:
        events = self.tmp / name
        events.mkdir()
        config = self.tmp / f"{name}.yaml"
        config.write_text(f"rules_dir: {ROOT / 'rules'}\nstate_path: {self.tmp / name}.db\nevents_dir: {events}\n")
        self.daemon = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "watch", "--config", str(config)],
                                       env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        return events

    def stop_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.terminate()
        self.daemon.wait(timeout=30)

    def close(self) -> None:
        self.fake.terminate()


def drop(events: Path, name: str, lines: list[dict]) -> float:  # type: ignore[type-arg]
    """As producers should: write .NAME.part in the folder, then rename it into place."""
    temp = events / f".{name}.part"
    temp.write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    started = time.time()
    os.rename(temp, events / name)
    return started


def wait_processed(events: Path, count: int, timeout: float) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = events / "processed"
        if done.exists() and sum(1 for _ in done.iterdir()) >= count:
            return time.time()
        time.sleep(0.02)
    raise SystemExit(f"timed out: fewer than {count} files processed in {events}")


def latency(bench: Bench) -> None:
    events = bench.start_daemon("latency")
    dropped = {}
    for n in range(200):
        dropped[f"codespar-acme-bench-build-{n}"] = drop(events, f"{n}.json", [build(n)])
        time.sleep(0.03)
    wait_processed(events, 200, 60)
    bench.stop_daemon()
    arrived = {r["body"]["incident"]["incident_key"]: r["at"] for r in control(bench.url, "/_fake/requests")["requests"]
               if r["method"] == "POST" and r["path"] == "/incidents"}
    ms = sorted((arrived[key] - at) * 1000 for key, at in dropped.items())
    median, p99 = statistics.median(ms), ms[int(len(ms) * 0.99) - 1]
    print(f"latency, rename -> create at the fake, 200 files: median {median:.1f} ms, p99 {p99:.1f} ms "
          f"(goal median < 100 ms: {'met' if median < 100 else 'NOT met'})")


def throughput(bench: Bench) -> None:
    batch = [[build(10_000 + (f * 10 + n) % 100, repo=f"acme/t{(f * 10 + n) % 100}") for n in range(10)]
             for f in range(1000)]
    stream = "\n".join(json.dumps(e) for file in batch for e in file) + "\n"
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "cli.py"), "process", "--state", str(bench.tmp / "stream.db")],
                   input=stream, text=True, env=bench.env, capture_output=True, check=True)
    stream_rate = 10_000 / (time.perf_counter() - started)
    events = bench.start_daemon("throughput")
    for f, lines in enumerate(batch):  # written as dotfiles the daemon ignores, then renamed at once
        (events / f".{f:04d}.ndjson.part").write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    started_at = time.time()
    for f in range(1000):
        os.rename(events / f".{f:04d}.ndjson.part", events / f"{f:04d}.ndjson")
    finished = wait_processed(events, 1000, 300)
    bench.stop_daemon()
    rate = 10_000 / (finished - started_at)
    print(f"throughput, 10,000 events in 1,000 files: {rate:,.0f} events/s ({finished - started_at:.1f} s); "
          f"baseline live `process` as one stream: {stream_rate:,.0f} events/s; ratio {rate / stream_rate:.0%}")


def memory(bench: Bench) -> None:
    events = bench.start_daemon("soak")
    assert bench.daemon is not None
    readings = {}
    for f in range(1000):  # a storm over 50 repos x 20 builds: mostly repeats, some resolves, new ids each time
        drop(events, f"{f:04d}.ndjson", [{**build(f % 20, repo=f"acme/s{n % 50}", status="failed" if n % 5
                                                  else "passed"), "id": f"soak-{f}-{n}"} for n in range(100)])
        if f + 1 in (100, 1000):
            wait_processed(events, f + 1, 600)
            readings[(f + 1) * 100] = rss_kib(bench.daemon.pid)
    bench.stop_daemon()
    small, large = readings[10_000], readings[100_000]
    print(f"memory of the daemon: {small / 1024:.1f} MiB after 10,000 events, {large / 1024:.1f} MiB after "
          f"100,000: {large / small:.2f}x (goal flat, under 1.25x: {'met' if large / small < 1.25 else 'NOT met'})")


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    bench = Bench(tmp)
    try:
        latency(bench)
        throughput(bench)
        memory(bench)
    finally:
        bench.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
