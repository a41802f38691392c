"""The fake PagerDuty's REST incidents at scale: seeded in bulk, found by incident_key without a scan."""
from __future__ import annotations

from typing import Any

import requests
from fake_pagerduty import FROM_EMAIL, TOKEN, FakePagerDuty

HEADERS = {"Authorization": f"Token token={TOKEN}", "From": FROM_EMAIL}


class NoScan(dict):  # type: ignore[type-arg]
    """The fake's incidents, refusing to be walked: only lookups by id are allowed."""

    def values(self) -> Any:
        raise AssertionError("the fake walked every incident")

    items = values
    __iter__ = values


def test_seeded_incidents_are_open_and_found_by_key_without_a_scan(fake: FakePagerDuty) -> None:
    url = fake.url  # type: ignore[attr-defined]
    answer = requests.post(f"{url}/_fake/seed", json={"incidents": [
        {"incident_key": f"k{n}", "title": f"seeded {n}"} for n in range(1000)]}, timeout=10)
    ids = answer.json()["ids"]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    fake.incidents = NoScan(fake.incidents)
    found = requests.get(f"{url}/incidents", headers=HEADERS, timeout=10, params=[
        ("incident_key", "k7"), ("statuses[]", "triggered"), ("statuses[]", "acknowledged")]).json()["incidents"]
    assert [(i["id"], i["incident_key"], i["title"], i["status"]) for i in found] == [
        (ids[7], "k7", "seeded 7", "triggered")]
    again = requests.post(f"{url}/incidents", headers=HEADERS, timeout=10, json={
        "incident": {"type": "incident", "title": "again", "incident_key": "k7", "service": {"id": "PSVC001"}}})
    assert again.status_code == 400 and "matching dedup key" in again.text
    fake.resolve_by_hand("k7")
    assert requests.get(f"{url}/incidents", headers=HEADERS, timeout=10, params=[
        ("incident_key", "k7"), ("statuses[]", "triggered")]).json()["incidents"] == []
    reopened = requests.post(f"{url}/incidents", headers=HEADERS, timeout=10, json={
        "incident": {"type": "incident", "title": "again", "incident_key": "k7", "service": {"id": "PSVC001"}}})
    assert reopened.status_code == 201


def test_seed_open_helper_answers_ids_in_order(fake: FakePagerDuty) -> None:
    ids = fake.seed_open([{"incident_key": "a", "title": "A"}, {"incident_key": "b", "title": "B"}])
    assert [fake.incidents[i]["incident_key"] for i in ids] == ["a", "b"]
    assert fake.open_keys() == ["a", "b"]


def test_log_entries_answer_what_happened_and_refuse_a_query_the_spec_does_not_allow(fake: FakePagerDuty) -> None:
    url = fake.url  # type: ignore[attr-defined]
    headers = {"Authorization": f"Token token={TOKEN}", "Accept": "application/vnd.pagerduty+json;version=2"}
    [incident_id] = fake.seed_open([{"incident_key": "k1", "title": "t"}])
    fake.resolve_by_hand("k1")
    ok = requests.get(f"{url}/log_entries", params=[("since", "2000-01-01T00:00:00Z"), ("include[]", "incidents")],
                      headers=headers, timeout=5)
    assert ok.status_code == 200
    entries = ok.json()["log_entries"]
    assert [e["type"] for e in entries] == ["trigger_log_entry", "resolve_log_entry"]
    assert entries[1]["incident"]["id"] == incident_id and entries[1]["incident"]["status"] == "resolved"
    for bad in ([("since", "yesterday")], [("include[]", "users")], [("statuses[]", "resolved")],
                [("offset", "9950"), ("limit", "100")]):
        refused = requests.get(f"{url}/log_entries", params=bad, headers=headers, timeout=5)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["errors"], bad


def test_a_write_whose_body_is_missing_or_cut_short_is_refused_and_creates_nothing(fake: FakePagerDuty) -> None:
    """A worker killed mid-request leaves the fake a body cut short, or none: PagerDuty answers 400."""
    url = fake.url  # type: ignore[attr-defined]
    cut = '{"incident": {"type": "incident", "title": "cut", "incident_key": "k1"'
    for body in (cut, ""):
        answer = requests.post(f"{url}/incidents", headers={**HEADERS, "Content-Type": "application/json"},
                               data=body, timeout=10)
        assert (answer.status_code, answer.json()["error"]["message"]) == (400, "Invalid Input Provided")
    assert fake.incidents == {} and [c["body"] for c in fake.calls("POST", "/incidents")] == [cut, None]
