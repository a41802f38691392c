"""Cost of many rules of one type, as ratios against the shipped rules in the same run (issue 17).

20,000 events (half build, half deploy.health, as bench_process.py makes them) go through the pure
evaluate path (check_event + evaluate, no dispatch) with the shipped rules, then with 1,000 and 10,000
more rules of type build, each matching `status: failed, repo: acme/xN` (100 files of 10 or 100 rules).
Goals: events/s at least 0.5x the shipped rules' at 1,000 and 0.25x at 10,000; start-up (a fresh
`process --dry-run` process on no events) with 1,000 more rules at most 3x the shipped rules' start-up;
a reload after editing one of those files (RuleCache) at most 0.2x a full load.

    python bench/bench_rules.py
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_process import events  # noqa: E402

from engine.config import Config, load_config_text  # noqa: E402
from engine.dispatch.dispatcher import MemoryView  # noqa: E402
from engine.evaluation.evaluate import evaluate  # noqa: E402
from engine.language.loading import RuleCache, load_ruleset  # noqa: E402
from engine.language.model import RuleSet  # noqa: E402

FILES = 100


def rule_file(first: int, count: int, title: str = "x{n} failed: build {{{{ event.build_number }}}}") -> str:
    return "triggers:\n" + "".join(
        f"  - id: extra-{n}\n    on: build\n    match: {{status: failed, repo: acme/x{n}}}\n"
        f"    severity: low\n    title: '{title.format(n=n)}'\n    incident_key: 'x-{{{{ event.repo }}}}'\n"
        for n in range(first, first + count))


def rules_dir(tmp: Path, extra: int) -> Path:
    """The shipped rules (and packs) plus ``extra`` build rules in FILES files."""
    target = tmp / f"rules-{extra}"
    shutil.copytree(ROOT / "rules", target, ignore=shutil.ignore_patterns("tests"))
    per = extra // FILES
    for number in range(FILES if extra else 0):
        (target / f"zz-extra-{number:03}.yaml").write_text(rule_file(number * per, per))
    return target


def config_for(folder: Path) -> Config:
    return load_config_text((ROOT / "pagerduty.yaml").read_text(), str(ROOT / "pagerduty.yaml"), env={},
                            overrides={"rules_dir": str(folder)})


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def start_up(folder: Path) -> None:
    """`process --dry-run` on no events, as a fresh process: interpreter, imports, config and rules."""
    env = {**os.environ, "PAGERULES_RULES_DIR": str(folder)}
    subprocess.run([sys.executable, str(ROOT / "cli.py"), "process", "--dry-run"], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env, check=True)


def throughput(ruleset: RuleSet, batch: list[dict[str, object]]) -> None:
    view = MemoryView()
    for event in batch:
        evaluate(event, ruleset, view)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    args = parser.parse_args()
    batch = list(events(args.events))
    with tempfile.TemporaryDirectory() as tmp:
        folders = {extra: rules_dir(Path(tmp), extra) for extra in (0, 1_000, 10_000)}
        configs = {extra: config_for(folder) for extra, folder in folders.items()}
        rulesets = {extra: load_ruleset(config) for extra, config in configs.items()}
        throughput(rulesets[0], batch)  # warm up: imports, caches, the fast paths' first compile
        print(f"events/s over {args.events:,} events (half build, half deploy.health), best of {args.repeat}:")
        rates = {extra: args.events / best(args.repeat, lambda r=ruleset: throughput(r, batch))  # type: ignore[misc]
                 for extra, ruleset in rulesets.items()}
        print(f"  shipped rules         : {rates[0]:>9,.0f} events/s")
        for extra, goal in ((1_000, 0.5), (10_000, 0.25)):
            ratio = rates[extra] / rates[0]
            print(f"  + {extra:>6,} build rules: {rates[extra]:>9,.0f} events/s  ratio {ratio:.2f} "
                  f"(goal >= {goal}: {'met' if ratio >= goal else 'NOT met'})")
        up_shipped = best(args.repeat, lambda: start_up(folders[0]))
        up_1k = best(args.repeat, lambda: start_up(folders[1_000]))
        ratio = up_1k / up_shipped
        print(f"start-up (`process --dry-run` on no events, a fresh process), best of {args.repeat}:")
        print(f"  shipped rules         : {up_shipped * 1000:8.1f} ms")
        print(f"  +  1,000 build rules  : {up_1k * 1000:8.1f} ms  ratio {ratio:.2f} "
              f"(goal <= 3: {'met' if ratio <= 3 else 'NOT met'})")
        load_shipped = best(args.repeat, lambda: load_ruleset(configs[0]))
        load_1k = best(args.repeat, lambda: load_ruleset(configs[1_000]))
        print(f"loading the rules alone (load_ruleset, in process), best of {args.repeat}:")
        print(f"  shipped rules         : {load_shipped * 1000:8.1f} ms")
        print(f"  +  1,000 build rules  : {load_1k * 1000:8.1f} ms  ratio {load_1k / load_shipped:.2f}")
        cache = RuleCache()
        cache.load(configs[1_000])
        edited = folders[1_000] / "zz-extra-042.yaml"
        reloads = []
        for number in range(args.repeat):
            edited.write_text(rule_file(420, 10, title=f"edit {number}: " + "x{n} {{{{ event.repo }}}}"))
            start = time.perf_counter()
            cache.load(configs[1_000])
            reloads.append(time.perf_counter() - start)
            assert cache.compiled == 1, cache.compiled
        reload_s = min(reloads)
        ratio = reload_s / load_1k
        print(f"  reload after editing 1 of {FILES} files (RuleCache): {reload_s * 1000:.1f} ms  ratio {ratio:.2f} "
              f"of a full load (goal <= 0.2: {'met' if ratio <= 0.2 else 'NOT met'})")


if __name__ == "__main__":
    main()
