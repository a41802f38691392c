"""The shipped example of flap control and repeat control, rules/examples/main-flap.yaml, passes its rule
test cases (README "Flap control", "Repeat control"), on event time only; a wrong expectation fails."""
from __future__ import annotations

from pathlib import Path

from builders import ROOT
from click.testing import CliRunner, Result

from cli import main

EXAMPLES = ROOT / "rules" / "examples"


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_the_flap_and_renotify_example_cases_pass() -> None:
    result = invoke(["test", "--rules", str(EXAMPLES), str(EXAMPLES / "tests" / "main-flap.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "6 passed, 0 failed"


def test_a_page_expected_inside_the_renotify_wait_fails(tmp_path: Path) -> None:
    case = tmp_path / "early.yaml"
    red = ("{type: build, id: %s, at: %s, repo: acme/api, branch: main, build_number: 1, status: failed, "
           "url: 'https://ci.example.com/b/1'}")
    case.write_text(f"""cases:
  - name: early
    events:
      - {red % ("f1", "+0s")}
      - {{resolve_by_hand: codespar-acme-api-main-red, at: +1m}}
      - {red % ("f2", "+3h")}
    expect:
      - {{action: trigger, status: planned}}
      - {{action: trigger, status: planned}}
""")
    result = invoke(["test", "--rules", str(EXAMPLES), str(case)])
    assert result.exit_code == 1
    assert result.output.splitlines()[1:] == [
        "    outcome 2 (trigger): status: expected 'planned', got 'renotify_wait'", "0 passed, 1 failed"]
