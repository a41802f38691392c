"""Silences over HTTP (engine.web.silences): the bearer-token API, 400s naming the field, the creator
taken from who signed in, and the dashboard's page with its form and Expire buttons."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from builders import API_TOKEN, AUTH, app_for, open_one
from fake_pagerduty import TOKEN, FakePagerDuty

from engine.dispatch.dispatcher import Dispatcher
from engine.evaluation.actions import Extras, TriggerAction
from engine.web import tokens

DB_DOWN = {"match": {"repo": "acme/db"}, "for": "1h", "comment": "db upgrade"}


def rule_page(app: Any) -> dict[str, Any]:
    """A rule's trigger for acme/db through the server's own backend (silences mute what rules decide)."""
    backend = app.extensions["pagerules"].backend
    action = TriggerAction("db-down", "e1", "codespar-acme-db-down", "[CodeSpar] High: db down", "high",
                           lambda: Extras({"repo": "acme/db"}, {}, []))
    return Dispatcher(backend.config, backend).handle(action)[-1].to_line()


def test_a_silence_made_over_the_api_mutes_the_trigger_and_lets_the_resolve_through(fake: FakePagerDuty,
                                                                                    tmp_path: Path) -> None:
    app = app_for(fake, tmp_path)
    client = app.test_client()
    assert client.post("/api/silences", json=DB_DOWN).status_code == 401  # no token: nothing made
    assert client.get("/api/silences").status_code == 401
    made = client.post("/api/silences", headers=AUTH, json=DB_DOWN)
    assert made.status_code == 201
    silence = made.get_json()
    assert (silence["created_by"], silence["state"], silence["match"]) == ("api", "active", {"repo": "acme/db"})
    line = rule_page(app)
    assert (line["status"], line["silence_id"]) == ("silenced", silence["id"]) and fake.incidents == {}
    audit = client.get("/api/audit", headers=AUTH).get_json()["entries"]
    assert [(e["actor"], e["action"]) for e in audit[:2]] == [("api", "silenced"), ("api", "silence")]
    listed = client.get("/api/silences", headers=AUTH).get_json()["silences"]
    assert [s["id"] for s in listed] == [silence["id"]]
    ended = client.delete(f"/api/silences/{silence['id']}", headers=AUTH)
    assert ended.status_code == 200 and ended.get_json()["state"] == "expired"
    assert client.get("/api/silences", headers=AUTH).get_json()["silences"] == []
    assert [s["id"] for s in client.get("/api/silences?all=1", headers=AUTH).get_json()["silences"]] == \
        [silence["id"]]
    assert client.delete(f"/api/silences/{silence['id']}", headers=AUTH).status_code == 409
    assert client.delete("/api/silences/nope", headers=AUTH).get_json() == {"error": "no silence 'nope'"}
    assert rule_page(app)["status"] == "created"  # over: the next trigger pages


def test_a_page_sent_by_hand_over_the_api_is_not_muted(fake: FakePagerDuty, tmp_path: Path) -> None:
    app = app_for(fake, tmp_path)
    client = app.test_client()
    assert client.post("/api/silences", headers=AUTH, json=DB_DOWN).status_code == 201
    assert rule_page(app)["status"] == "silenced"
    assert open_one(client)["status"] == "created"  # a person paging on purpose reaches someone


def test_a_resolve_is_never_muted(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    line = open_one(client)
    assert client.post("/api/silences", headers=AUTH, json=DB_DOWN).status_code == 201
    done = client.post(f"/api/incidents/{line['incident_key']}/resolve", headers=AUTH, json={"message": "ok"})
    assert done.get_json()["status"] == "resolved"
    assert fake.incidents[line["incident_id"]]["status"] == "resolved"


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"for": "1h", "comment": "c"}, "match",
     "match: expected a mapping of label matchers, got NoneType"),
    ({"match": {}, "for": "1h", "comment": "c"}, "match",
     "match: no matchers: a silence without any would mute every page; give at least one"),
    ({"match": {"repo": {"like": "x"}}, "for": "1h", "comment": "c"}, "match.repo",
     "match.repo: unknown matcher 'like'"),
    ({**DB_DOWN, "for": "soon"}, "for", "for: 'soon' is not a duration"),
    ({**DB_DOWN, "ends_at": "2026-01-01T00:00:00Z"}, "ends_at", "ends_at: give an end or a duration, not both"),
    ({"match": {"repo": "x"}, "comment": "c", "ends_at": "2000-01-01T00:00:00Z"}, "ends_at",
     "ends_at: 2000-01-01T00:00:00Z is not after starts_at"),
    ({**DB_DOWN, "weekly": {"between": "22:00-23:00", "tz": "Mars/Olympus"}}, "weekly.tz",
     "weekly.tz: unknown time zone 'Mars/Olympus'"),
    ({**DB_DOWN, "created_by": "someone-else"}, "created_by",
     "created_by: unknown field; the fields are match, comment, starts_at, ends_at, for, weekly"),
    ({**DB_DOWN, "comment": ""}, "comment", "comment: say why"),
])
def test_a_bad_silence_is_400_naming_the_field(fake: FakePagerDuty, tmp_path: Path, body: dict[str, Any],
                                               field: str, message: str) -> None:
    client = app_for(fake, tmp_path).test_client()
    answer = client.post("/api/silences", headers=AUTH, json=body)
    assert answer.status_code == 400
    assert answer.get_json()["field"] == field and answer.get_json()["error"].startswith(message)
    assert client.get("/api/silences", headers=AUTH).get_json()["silences"] == []


def test_a_maintenance_window_over_the_api(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    body = {**DB_DOWN, "weekly": {"weekdays": ["sat", "sun"], "between": "00:00-24:00", "tz": "Europe/Berlin"}}
    made = client.post("/api/silences", headers=AUTH, json=body).get_json()
    assert made["weekly"] == {"weekdays": ["sat", "sun"], "between": "00:00-24:00", "tz": "Europe/Berlin"}
    assert made["state"] in ("active", "waiting")


def test_the_creator_is_the_named_tokens_person(fake: FakePagerDuty, tmp_path: Path) -> None:
    people = tmp_path / "people.tokens"
    alice = tokens.add(people, "alice", 1000.0)
    client = app_for(fake, tmp_path, PAGERULES_TOKENS_FILE=str(people)).test_client()
    made = client.post("/api/silences", headers={"Authorization": f"Bearer {alice}"}, json=DB_DOWN).get_json()
    assert made["created_by"] == "alice"
    gone = client.delete(f"/api/silences/{made['id']}", headers={"Authorization": f"Bearer {alice}"})
    assert gone.status_code == 200
    actors = [(e["actor"], e["action"]) for e in client.get("/api/audit", headers=AUTH).get_json()["entries"]]
    assert actors[:2] == [("alice", "silence_expire"), ("alice", "silence")]


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_the_dashboard_page_makes_lists_and_expires_silences(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    assert client.get("/silences").status_code == 302  # not signed in: to the login page
    client.post("/login", data={"token": API_TOKEN})
    page = client.get("/silences").get_data(as_text=True)
    assert 'id="silence-form"' in page and "No silences" in page
    csrf = csrf_of(page)
    form = {"match": "repo=acme/db, kind=build", "for": "2h", "comment": "db upgrade", "csrf": csrf}
    assert client.post("/ui/silences", data={**form, "csrf": "forged"}).status_code == 403
    made = client.post("/ui/silences", data=form)
    assert made.status_code == 302 and "made" in made.headers["Location"]
    page = client.get("/silences").get_data(as_text=True)
    [silence] = client.get("/api/silences", headers=AUTH).get_json()["silences"]
    assert (silence["created_by"], silence["match"]) == ("dashboard", {"repo": "acme/db", "kind": "build"})
    assert f'data-id="{silence["id"]}"' in page and "db upgrade" in page and ">active<" in page
    assert client.post(f"/ui/silences/{silence['id']}/expire", data={"csrf": "forged"}).status_code == 403
    done = client.post(f"/ui/silences/{silence['id']}/expire", data={"csrf": csrf})
    assert done.status_code == 302
    assert client.get("/api/silences", headers=AUTH).get_json()["silences"] == []
    assert client.post(f"/ui/silences/{silence['id']}/expire", data={"csrf": csrf}).status_code == 409


def test_the_dashboard_form_says_what_is_wrong_and_keeps_what_was_typed(fake: FakePagerDuty,
                                                                         tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    client.post("/login", data={"token": API_TOKEN})
    csrf = csrf_of(client.get("/silences").get_data(as_text=True))
    answer = client.post("/ui/silences", data={"match": "repo=acme/db", "for": "2h", "comment": "window",
                                               "between": "22:00-23:00", "tz": "Nowhere/Land", "csrf": csrf})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "weekly.tz: unknown time zone &#39;Nowhere/Land&#39;" in page and 'value="repo=acme/db"' in page
    empty = client.post("/ui/silences", data={"match": "", "for": "2h", "comment": "all", "csrf": csrf})
    assert empty.status_code == 400 and "would mute every page" in empty.get_data(as_text=True)


def test_no_secret_appears_in_silence_answers_or_the_audit_trail(fake: FakePagerDuty, tmp_path: Path) -> None:
    client = app_for(fake, tmp_path).test_client()
    texts = [client.post("/api/silences", headers=AUTH, json=DB_DOWN).get_data(as_text=True),
             client.post("/api/silences", headers=AUTH, json={"match": {}}).get_data(as_text=True),
             client.get("/api/silences?all=1", headers=AUTH).get_data(as_text=True),
             client.get("/api/audit", headers=AUTH).get_data(as_text=True)]
    client.post("/login", data={"token": API_TOKEN})
    texts.append(client.get("/silences").get_data(as_text=True))
    for text in texts:
        assert API_TOKEN not in text and TOKEN not in text
