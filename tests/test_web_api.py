"""The JSON API (engine.web.api): the bearer token on every call, whole error messages naming the
field, and the incident list refreshed from PagerDuty on an injected clock."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fake_pagerduty
import pytest
from builders import API_TOKEN, AUTH, Clock, app_for, build, open_one
from fake_pagerduty import FakePagerDuty
from pg_server import pg_server, pg_url  # noqa: F401


@pytest.mark.parametrize("method, path", [("GET", "/api/oncall"), ("GET", "/api/incidents"), ("GET", "/api/audit"),
                                          ("POST", "/api/incidents"), ("POST", "/api/incidents/k/acknowledge"),
                                          ("POST", "/api/incidents/k/resolve"), ("POST", "/api/events")])
def test_every_api_call_needs_the_bearer_token(fake: FakePagerDuty, tmp_path: Path, method: str, path: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code == 401
        assert response.get_json() == {"error": "missing or wrong bearer token (Authorization: Bearer "
                                                "<PAGERULES_API_TOKEN>)"}
    assert fake.calls() == []  # nothing happened


def test_oncall_gives_the_lowest_level_first(fake: FakePagerDuty, tmp_path: Path) -> None:
    body = app_for(fake, tmp_path).test_client().get("/api/oncall", headers=AUTH).get_json()
    assert {k: body[k] for k in ("name", "email", "escalation_level", "schedule", "until")} == {
        "name": "Ada Oncall", "email": "ada@example.com", "escalation_level": 1, "schedule": "Primary",
        "until": "2026-11-28T18:00:00Z"}
    assert [p["name"] for p in body["levels"]] == ["Ada Oncall", "Bo Backup"]


def test_trigger_list_acknowledge_resolve_and_audit(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    created = client.post("/api/incidents", headers=AUTH, json={
        "title": "checkout is down", "severity": "critical", "repo": "acme/shop", "details": {"runbook": "r1"}})
    assert created.status_code == 201
    line = created.get_json()
    assert (line["status"], line["title"]) == ("created", "[CodeSpar] Critical: checkout is down")
    again = client.post("/api/incidents", headers=AUTH, json={"title": "checkout is down", "severity": "critical",
                                                              "repo": "acme/shop"})
    assert (again.status_code, again.get_json()["status"]) == (200, "deduplicated")
    listed = client.get("/api/incidents?repo=acme/shop", headers=AUTH).get_json()["incidents"]
    assert [i["incident_key"] for i in listed] == [line["incident_key"]]
    assert listed[0]["incident_url"] == line["incident_url"] and line["incident_url"].startswith("https://")
    assert client.get("/api/incidents?repo=other/repo", headers=AUTH).get_json() == {"incidents": []}
    key = line["incident_key"]
    ack = client.post(f"/api/incidents/{key}/acknowledge", headers=AUTH)
    assert ack.status_code == 200 and ack.get_json()["status"] == "acknowledged"
    resolved = client.post(f"/api/incidents/{key}/resolve", headers=AUTH, json={"message": "rolled back"})
    assert resolved.get_json()["status"] == "resolved"
    assert fake.incidents[line["incident_id"]]["resolution"] == "rolled back"
    actions = [(e["actor"], e["action"]) for e in client.get("/api/audit", headers=AUTH).get_json()["entries"]]
    assert actions == [("api", "resolved"), ("api", "acknowledged"), ("api", "deduplicate"), ("api", "create")]


def test_below_threshold_applies_to_manual_triggers_too(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    body = client.post("/api/incidents", headers=AUTH, json={"title": "t", "severity": "low", "repo": "a/b"})
    assert body.get_json()["status"] == "below_threshold" and fake.calls() == []


@pytest.mark.parametrize("body, message", [
    ("not json", "body is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    ("[1]", "expected a JSON object body (Content-Type: application/json)"),
    ({"title": "t"}, "missing or empty: severity, repo"),
    ({"title": "t", "severity": "high", "repo": "a/b", "details": "x"}, "details: expected an object"),
    ({"title": "t", "severity": "high", "repo": "a/b", "incident_key": 42}, "incident_key: expected non-empty text, "
                                                                            "got a number"),
    ({"title": "t", "severity": "high", "repo": "a/b", "incident_key": ["k"]}, "incident_key: expected non-empty "
                                                                               "text, got a list"),
    ({"title": "t", "severity": "high", "repo": "a/b", "incident_key": {"k": 1}}, "incident_key: expected "
                                                                                  "non-empty text, got an object"),
    ({"title": "t", "severity": "high", "repo": "a/b", "incident_key": ""}, "incident_key: expected non-empty text, "
                                                                           "got empty text"),
    ({"title": 7, "severity": "high", "repo": "a/b"}, "title: expected text, got a number"),
    ({"title": "t", "severity": ["high"], "repo": "a/b"}, "severity: expected text, got a list"),
    ({"title": "t", "severity": "high", "repo": True}, "repo: expected text, got true/false"),
    ('{"title": "t", "severity": "high", "repo": "a/b", "details": ' + "[" * 5000 + "]" * 5000 + "}",
     "body is nested deeper than 64 levels"),
    ('{"title": NaN, "severity": "high", "repo": "a/b"}', "NaN is not valid JSON (RFC 8259 has no NaN or Infinity)"),
])
def test_bad_requests_are_400_with_a_message(fake: FakePagerDuty, tmp_path: Path, body: Any, message: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, str) else {"json": body}
    response = client.post("/api/incidents", headers=AUTH, **kwargs)
    assert (response.status_code, response.get_json()) == (400, {"error": message})


def test_an_unknown_severity_is_a_clear_error_not_a_traceback(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/api/incidents", headers=AUTH, json={"title": "t", "severity": "urgent", "repo": "a/b"})
    assert (response.status_code, response.get_json()) == (400, {
        "error": "severity: 'urgent' is not a severity (known: low, medium, high, critical)"})


@pytest.mark.parametrize("limit", ["\u00b2", "-1", "0", "1001", "9" * 5000, "1.5", " 5", "abc", ""])
def test_audit_limit_must_be_a_whole_number_in_range(fake: FakePagerDuty, tmp_path: Path, limit: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.get("/api/audit", headers=AUTH, query_string={"limit": limit})
    assert (response.status_code, response.get_json()) == (400, {
        "error": "limit: expected a whole number from 1 to 1000"})
    assert client.get("/api/audit?limit=1000", headers=AUTH).status_code == 200


def test_the_incident_list_refreshes_from_pagerduty_at_most_every_30_s(fake: FakePagerDuty, tmp_path: Path) -> None:
    clock = Clock()
    client = app_for(fake, tmp_path, clock=clock).test_client()
    line = open_one(client)
    assert [i["status"] for i in client.get("/api/incidents", headers=AUTH).get_json()["incidents"]] == ["triggered"]
    fake.resolve_by_hand(line["incident_key"])
    clock.now += 29
    assert len(client.get("/api/incidents", headers=AUTH).get_json()["incidents"]) == 1  # not yet asked again
    entries = len(fake.calls("GET", "/log_entries"))  # after the first full round, a round reads what changed
    clock.now += 1
    assert client.get("/api/incidents", headers=AUTH).get_json() == {"incidents": []}
    assert len(fake.calls("GET", "/log_entries")) == entries + 1


def test_an_incident_resolved_in_pagerduty_is_never_acknowledged(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()  # the refresh has not run since: the state is stale
    line = open_one(client)
    fake.resolve_by_hand(line["incident_key"])
    response = client.post(f"/api/incidents/{line['incident_key']}/acknowledge", headers=AUTH)
    assert response.status_code == 409
    assert response.get_json()["error"] == ("PagerDuty says this incident is already resolved; nothing was "
                                            "acknowledged (acknowledging would re-open it)")
    assert fake.incidents[line["incident_id"]]["status"] == "resolved"  # not re-opened
    assert fake.calls("PUT") == []
    assert client.get("/api/incidents", headers=AUTH).get_json() == {"incidents": []}  # the state knows now


def test_oncall_is_404_when_nobody_is_on_call(fake: FakePagerDuty, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake_pagerduty, "ONCALL", [])
    response = app_for(fake, tmp_path).test_client().get("/api/oncall", headers=AUTH)
    assert (response.status_code, response.get_json()) == (404, {
        "error": "nobody is on call for this escalation policy"})


@pytest.mark.parametrize("body, message", [
    ({"message": 42}, "message: expected text"),
    ({"message": ["rolled back"]}, "message: expected text"),
    ("[]", "expected a JSON object body (Content-Type: application/json)"),
    ('{"message": "x"', "body is not valid JSON: Expecting ',' delimiter: line 1 column 16 (char 15)"),
])
def test_a_bad_resolve_body_is_400_and_nothing_is_resolved(fake: FakePagerDuty, tmp_path: Path, body: Any,
                                                            message: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    line = open_one(client)
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, str) else {"json": body}
    response = client.post(f"/api/incidents/{line['incident_key']}/resolve", headers=AUTH, **kwargs)
    assert (response.status_code, response.get_json()) == (400, {"error": message})
    assert fake.calls("PUT") == [] and fake.incidents[line["incident_id"]]["status"] == "triggered"


def test_a_body_that_is_not_declared_json_is_400(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/api/incidents", headers=AUTH, data='{"title": "t", "severity": "high", "repo": "a/b"}',
                           content_type="text/plain")
    assert (response.status_code, response.get_json()) == (400, {
        "error": "expected a JSON object body (Content-Type: application/json)"})
    assert fake.calls() == []


def test_resolve_without_a_body_uses_the_default_message(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    line = open_one(client)
    response = client.post(f"/api/incidents/{line['incident_key']}/resolve", headers=AUTH)
    assert (response.status_code, response.get_json()["status"]) == (200, "resolved")
    assert fake.incidents[line["incident_id"]]["resolution"] == "Resolved by hand with pagerules"


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acting_on_a_key_with_nothing_open_is_404(fake: FakePagerDuty, tmp_path: Path, action: str) -> None:
    response = app_for(fake, tmp_path).test_client().post(f"/api/incidents/no-such-key/{action}", headers=AUTH)
    assert (response.status_code, response.get_json()["status"]) == (404, "nothing_open")
    assert response.get_json()["incident_key"] == "codespar-no-such-key"


def test_the_api_acts_as_api_in_the_audit_trail_whatever_the_backend_actor(fake: FakePagerDuty,
                                                                          tmp_path: Path) -> None:
    app = app_for(fake, tmp_path)
    app.extensions["pagerules"].backend.actor = "rules"
    client = app.test_client()
    open_one(client)
    assert [e["actor"] for e in client.get("/api/audit", headers=AUTH).get_json()["entries"]] == ["api"]


WRITTEN_KEY = "writtenkey0123456789abcdef012345"
ROUTES = f"""channels: []
routes:
  - match: {{kind: sentry-issue}}
    routing_key: {WRITTEN_KEY}
  - match: {{repo: acme/payments}}
    service_id: {fake_pagerduty.SERVICE}
    escalation_policy_id: PEPPAY1
  - match: {{repo: acme/mobile}}
    routing_key: {WRITTEN_KEY}
"""


def test_oncall_for_a_repo_answers_for_its_route(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path, ROUTES).test_client()
    pay = client.get("/api/oncall?repo=acme/payments", headers=AUTH)
    shop = client.get("/api/oncall?repo=acme/shop", headers=AUTH)
    assert (pay.status_code, shop.status_code) == (200, 200)
    body = pay.get_json()
    assert {k: body[k] for k in ("name", "repo", "route", "escalation_policy_id", "also_routes")} == {
        "name": "Cy Payments", "repo": "acme/payments", "route": 1, "escalation_policy_id": "PEPPAY1",
        "also_routes": [0]}
    assert body["why"].endswith(":5: routes[1] is the first route that matches repo=acme/payments")
    assert [p["name"] for p in body["levels"]] == ["Cy Payments"]
    assert shop.get_json()["name"] == "Ada Oncall"  # the default policy's on-call: another person
    assert {k: shop.get_json()[k] for k in ("route", "escalation_policy_id")} == {
        "route": "default", "escalation_policy_id": fake_pagerduty.POLICY}
    asked = [[v for k, v in c["query"] if k == "escalation_policy_ids[]"] for c in fake.calls("GET", "/oncalls")]
    assert asked == [["PEPPAY1"], [fake_pagerduty.POLICY]]


def test_oncall_for_a_repo_on_an_events_api_route_without_a_policy_is_404_saying_what_to_add(
        fake: FakePagerDuty, tmp_path: Path) -> None:
    response = app_for(fake, tmp_path, ROUTES).test_client().get("/api/oncall?repo=acme/mobile", headers=AUTH)
    body = response.get_json()
    assert (response.status_code, body["route"], body["escalation_policy_id"], body["levels"]) == (404, 2, None, [])
    assert body["error"] == body["unknown"]
    assert body["error"].endswith(":9); the service behind a routing key, and so its on-call, is unknown to "
                                  "pagerules: add escalation_policy_id to routes[2] to name whose on-call to show")
    assert WRITTEN_KEY not in response.get_data(as_text=True)
    assert fake.calls("GET", "/oncalls") == []


def test_oncall_for_an_empty_repo_is_400(fake: FakePagerDuty, tmp_path: Path) -> None:
    response = app_for(fake, tmp_path).test_client().get("/api/oncall?repo=", headers=AUTH)
    assert (response.status_code, response.get_json()) == (400, {
        "error": "repo: expected a repository (owner/name), got empty text"})


def test_oncall_for_a_repo_is_404_when_nobody_is_on_call(fake: FakePagerDuty, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake_pagerduty, "ONCALL_PAYMENTS", [])
    response = app_for(fake, tmp_path, ROUTES).test_client().get("/api/oncall?repo=acme/payments", headers=AUTH)
    assert (response.status_code, response.get_json()["error"]) == (404, "nobody is on call for PEPPAY1")


def test_oncall_without_a_global_policy_says_what_to_set(fake: FakePagerDuty, tmp_path: Path) -> None:
    app = app_for(fake, tmp_path, PAGERDUTY_ESCALATION_POLICY_ID="", PAGERDUTY_ROUTING_KEY=fake_pagerduty.ROUTING_KEY)
    client = app.test_client()
    for path in ("/api/oncall", "/api/oncall?repo=acme/shop"):
        response = client.get(path, headers=AUTH)
        assert (response.status_code, response.get_json()["error"]) == (
            404, "PAGERDUTY_ESCALATION_POLICY_ID is not set: set it to name whose on-call to show")
        assert fake_pagerduty.ROUTING_KEY not in response.get_data(as_text=True)
    assert fake.calls() == []


# ---- issue 18: POST /api/events --------------------------------------------------------------------

def queued_app(fake: FakePagerDuty, tmp_path: Path, url: str) -> Any:
    from engine.pagerduty.pgqueue import EventQueue
    from engine.pagerduty.pgstate import PgState

    PgState(url).close()  # the queue's table (migration 5)
    app = app_for(fake, tmp_path)
    app.extensions["pagerules"].intake.use_queue(EventQueue(url))
    return app


def test_posted_events_go_into_the_queue_in_order_with_their_ids(fake: FakePagerDuty, tmp_path: Path,
                                                                 pg_url: str) -> None:  # noqa: F811
    import psycopg
    client = queued_app(fake, tmp_path, pg_url).test_client()
    events = [build(1, eid="b1"), build(2, eid="b2", repo="acme/web"), {"type": "alertmanager", "alerts": []}]
    response = client.post("/api/events", headers=AUTH, json=events)
    assert response.status_code == 202
    body = response.get_json()
    assert body["queued"] == 3 and body["ids"] == sorted(body["ids"]) and len(set(body["ids"])) == 3
    one = client.post("/api/events", headers=AUTH, json=build(3, eid="b3"))
    assert one.status_code == 202 and one.get_json()["ids"][0] > body["ids"][-1]
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT id, ordering_key, source, body FROM event_queue ORDER BY id").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (body["ids"][0], "repo:acme/backend-api", "api"), (body["ids"][1], "repo:acme/web", "api"),
        (body["ids"][2], "source:alertmanager", "api"), (one.get_json()["ids"][0], "repo:acme/backend-api", "api")]
    assert json.loads(rows[0][3]) == events[0]


def test_a_post_that_fails_midway_stores_none_of_its_events_and_is_503(fake: FakePagerDuty, tmp_path: Path,
                                                                      pg_url: str) -> None:  # noqa: F811
    import psycopg
    client = queued_app(fake, tmp_path, pg_url).test_client()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the third insert fails inside the transaction
        conn.execute("CREATE FUNCTION refuse_third() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                     " IF NEW.body LIKE '%\"n\": 3%' THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON event_queue FOR EACH ROW EXECUTE FUNCTION refuse_third()")
    response = client.post("/api/events", headers=AUTH, json=[{"type": "build", "n": n} for n in (1, 2, 3, 4)])
    assert response.status_code == 503 and response.headers["Retry-After"] == "10"
    assert "nothing was stored" in response.get_json()["error"] and "disk full" in response.get_json()["error"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM event_queue").fetchone() == (0,)


@pytest.mark.parametrize("body, message", [
    ([], "expected one event or a list of 1 to 1000 events, got 0"),
    ([{"type": "build"}, 3], "[1]: expected an event (a JSON object), got int"),
    ("text", "expected an event (a JSON object), got str"),
])
def test_posted_events_that_are_not_objects_are_400_and_nothing_is_stored(fake: FakePagerDuty, tmp_path: Path,
                                                                          body: Any, message: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/api/events", headers=AUTH, json=body)
    assert (response.status_code, response.get_json()) == (400, {"error": message})
    assert not (tmp_path / "events").exists() or list((tmp_path / "events").iterdir()) == []


def test_posted_events_without_a_queue_become_one_file_the_daemon_reads(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    response = client.post("/api/events", headers=AUTH, json=[build(349), build(350, eid="b2")])
    assert response.status_code == 202
    name = response.get_json()["file"]
    assert response.get_json()["queued"] == 2 and name.endswith(".ndjson") and "-api-" in name
    lines = (tmp_path / "events" / name).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [build(349), build(350, eid="b2")]
