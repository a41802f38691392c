"""The watch daemon under faults, after b138840's per-delivery progress record (issues 11.3 and 12.1).

Each test runs `pagerules watch` as a subprocess (the harness of test_daemon_watch.py) against the fake PagerDuty
and asserts on the incidents and calls the fake received.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from builders import ROOT, Daemon, build, wait_for
from fake_pagerduty import FakePagerDuty

KEY = "codespar-acme-backend-api-build-{}"


def creates(fake: FakePagerDuty, key: str) -> list[dict[str, Any]]:
    """Every POST /incidents the fake received for this incident_key (failed ones included)."""
    return [c for c in fake.calls("POST", "/incidents") if c["body"]["incident"].get("incident_key") == key]


def incidents(fake: FakePagerDuty, key: str) -> list[dict[str, Any]]:
    return [i for i in fake.incidents.values() if i["incident_key"] == key]


def test_identical_bytes_in_a_new_file_page_again_after_a_resolve_by_hand(fake: FakePagerDuty,
                                                                         tmp_path: Path) -> None:
    key = KEY.format(40)
    daemon = Daemon(tmp_path, fake)
    first = daemon.drop("a.json", [build(40)])
    content = first.read_bytes()
    assert daemon.once().returncode == 0
    assert len(creates(fake, key)) == 1 and fake.open_keys() == [key]
    fake.resolve_by_hand(key)
    daemon.drop("b.json", content.decode())  # a new delivery, byte for byte the same
    assert (daemon.events / "b.json").read_bytes() == content
    result = daemon.once()  # reconciles on start, so it knows the incident was resolved by hand
    assert result.returncode == 0, result.stderr[-2000:]
    assert daemon.done("a.json", "b.json") and (daemon.events / "processed" / "b.json").exists()
    assert len(creates(fake, key)) == 2  # before b138840: "1 already done" and no call at all
    assert [i["status"] for i in incidents(fake, key)] == ["resolved", "triggered"]
    assert "already done" not in result.stderr


def test_identical_bytes_page_again_in_a_running_daemon(fake: FakePagerDuty, tmp_path: Path) -> None:
    """The same, in a daemon that keeps running: its reconcile runs on start only (interval 300 s), so it
    may still believe the incident open; the new delivery must still not count as already done."""
    key = KEY.format(41)
    daemon = Daemon(tmp_path, fake, PAGERULES_DEDUP_WINDOW="0").start()
    content = daemon.drop("a.json", [build(41)]).read_text()
    wait_for(lambda: daemon.done("a.json"), 10, "a.json")
    assert len(creates(fake, key)) == 1
    fake.resolve_by_hand(key)
    daemon.drop("b.json", content)
    wait_for(lambda: daemon.done("b.json"), 10, "b.json")
    assert daemon.stop() == 0
    assert (daemon.events / "processed" / "b.json").exists()
    assert len(creates(fake, key)) == 2
    assert [i["status"] for i in incidents(fake, key)] == ["resolved", "triggered"]
    assert "already done" not in daemon.log.read_text()


def _rules_with_a_failing_details_template(tmp: Path) -> None:
    """The shipped rules, but build-failed has a details value that fails at run time (StrictUndefined)
    while its title and incident_key render."""
    shutil.copytree(ROOT / "rules", tmp / "rules")
    (tmp / "pd.yaml").write_text("rules_dir: rules\nstate_path: state.db\nevents_dir: events\n")
    rule = tmp / "rules" / "build.yaml"
    text = rule.read_text()
    marker = '      url: "{{ event.url | default(\'\') }}"\n'
    assert marker in text
    rule.write_text(text.replace(marker, marker + '      nope: "{{ event.nope }}"\n'))


def test_a_retry_after_an_outage_never_repeats_a_create_or_undoes_a_resolve(fake: FakePagerDuty,
                                                                           tmp_path: Path) -> None:
    _rules_with_a_failing_details_template(tmp_path)
    one, three = KEY.format(1), KEY.format(3)
    refused: list[str] = []
    handle = fake.handle

    def failing_handle(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str],
                       body: Any) -> tuple[int, dict[str, str], Any]:
        """The first two creates for build #3 answer 503; everything else is the fake's own answer."""
        if method == "POST" and path == "/incidents" and body["incident"].get("incident_key") == three \
                and len(refused) < 2:
            refused.append(three)
            return 503, {}, {"error": {"message": "injected fault"}}
        return handle(method, path, query, headers, body)
    fake.handle = failing_handle  # type: ignore[method-assign]

    daemon = Daemon(tmp_path, fake).start()
    daemon.drop("mixed.ndjson", [build(1, eid="f1"), build(1, "passed", eid="p1"), build(3, eid="f3")])
    wait_for(lambda: daemon.done("mixed.ndjson"), 30, "mixed.ndjson after the 503s")
    assert daemon.stop() == 0
    assert len(refused) == 2  # the file was tried three times
    assert len(creates(fake, one)) == 1
    assert [i["status"] for i in incidents(fake, one)] == ["resolved"]
    [incident_one] = incidents(fake, one)
    assert len(fake.calls("PUT", f"/incidents/{incident_one['id']}")) == 1  # resolved once, never again
    assert len(creates(fake, three)) == 3  # two refused, one created
    assert [i["status"] for i in incidents(fake, three)] == ["triggered"]
    assert fake.open_keys() == [three]
    # the trigger for #1 went out despite the details error, with the fallback text in its place
    sent = creates(fake, one)[0]["body"]["incident"]
    assert "(template error: see the error line)" in str(sent)
    log = daemon.log.read_text()
    assert "PagerDuty unreachable (try 1)" in log and "PagerDuty unreachable (try 2)" in log
    # each event's details error is reported once, though the file was read three times
    error = (daemon.events / "failed" / "mixed.ndjson.error").read_text()
    assert error.splitlines() == [
        "mixed.ndjson line 1: event f1: rule build-failed: details.nope: missing field 'nope'",
        "mixed.ndjson line 3: event f3: rule build-failed: details.nope: missing field 'nope'"]
