"""Silences as data: matching labels, the time they hold, weekly windows in a time zone, and the errors
a person sees for bad input."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from engine.language.silences import (
    Silence,
    SilenceError,
    iso,
    make_silence,
    make_weekly,
    matchers_from_pairs,
    parse_duration,
    parse_time,
    silence_from_request,
    silence_from_stored,
)

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc).timestamp()  # a Thursday


def silence(match: Any = None, **kwargs: Any) -> Silence:
    values: dict[str, Any] = {"created_by": "ada", "comment": "db upgrade", "starts_at": T0, "ends_at": T0 + 3600,
                              "created_at": T0}
    values.update(kwargs)
    return make_silence({"repo": "acme/api"} if match is None else match, **values)


def test_a_silence_mutes_inside_its_interval_only() -> None:
    made = silence()
    assert [made.active_at(t) for t in (T0 - 1, T0, T0 + 3599, T0 + 3600)] == [False, True, True, False]
    assert [made.state_at(t) for t in (T0 - 1, T0, T0 + 3600)] == ["pending", "active", "expired"]


def test_matchers_are_the_rule_languages_and_a_missing_label_is_no_match() -> None:
    made = silence({"repo": "acme/api", "branch": {"regex": "^release/"}})
    assert made.matches({"repo": "acme/api", "branch": "release/1.2", "kind": "build"})
    assert not made.matches({"repo": "acme/api", "branch": "main"})
    assert not made.matches({"repo": "acme/api"})
    assert silence({"repo": ["acme/api", "acme/web"]}).matches({"repo": "acme/web"})


@pytest.mark.parametrize("match", [
    {"team": {"exists": False}},  # holds for every incident without a team: nearly all of them
    {"repo": {"regex": ".*"}},  # holds for an empty label too
    {"team": {"exists": False}, "repo": {"regex": ".*"}},
])
def test_a_silence_whose_every_matcher_holds_for_a_missing_label_is_refused(match: dict[str, Any]) -> None:
    with pytest.raises(SilenceError, match=r"^match: every matcher also holds for a missing or empty label"):
        silence(match)


def test_one_matcher_a_label_must_have_is_enough() -> None:
    made = silence({"team": {"exists": False}, "repo": "acme/api"})
    assert made.matches({"repo": "acme/api"}) and not made.matches({"kind": "build"})


def test_cli_pairs_are_equalities() -> None:
    assert matchers_from_pairs(["repo=acme/api", "branch=a=b"]) == {"repo": "acme/api", "branch": "a=b"}
    with pytest.raises(SilenceError, match=r"^match: 'repo' is not label=value$"):
        matchers_from_pairs(["repo"])
    with pytest.raises(SilenceError, match=r"^match: label 'repo' given twice$"):
        matchers_from_pairs(["repo=a", "repo=b"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"match": {}}, "match: no matchers: a silence without any would mute every page; give at least one"),
    ({"match": {"repo": {"regex": "("}}},
     "match.repo: regex: invalid regular expression '(': missing ), unterminated subpattern at position 0"),
    ({"match": {"repo": {"nope": 1}}}, "match.repo: unknown matcher 'nope'"),
    ({"ends_at": T0 - 60}, "ends_at: 2026-12-03T11:59:00Z is not after starts_at 2026-12-03T12:00:00Z"),
    ({"ends_at": T0}, "ends_at: 2026-12-03T12:00:00Z is not after starts_at 2026-12-03T12:00:00Z"),
    ({"ends_at": T0 + parse_duration("99999999w")}, "ends_at: is outside the years 1970 to 9999"),
    ({"comment": "  "}, "comment: say why (who is working on what): a comment is required"),
    ({"created_by": ""}, "created_by: is empty: say who makes the silence"),
])
def test_bad_silences_are_refused_naming_the_field(kwargs: dict[str, Any], message: str) -> None:
    match = kwargs.pop("match", None)
    with pytest.raises(SilenceError) as caught:
        silence(match, **kwargs)
    assert str(caught.value).startswith(message)
    assert caught.value.exit_code == 2 and caught.value.field == message.split(":")[0]


def test_durations_and_times() -> None:
    assert [parse_duration(t) for t in ("90s", "30m", "2h", "1d", "1w", "1h30m")] == \
        [90, 1800, 7200, 86400, 604800, 5400]
    for bad in ("2", "2 hours", "-1h", "h", ""):
        with pytest.raises(SilenceError, match=r"^for: .* is not a duration: write a number and a unit"):
            parse_duration(bad)
    with pytest.raises(SilenceError, match=r"^for: '0m' is no time at all"):
        parse_duration("0m")
    assert parse_time("2026-12-03T12:00:00Z", "until") == T0
    assert parse_time("2026-12-03T13:00:00+01:00", "until") == T0
    assert parse_time("2026-12-03T12:00:00", "until") == T0  # no offset: UTC
    with pytest.raises(SilenceError, match=r"^until: 'tomorrow' is not an ISO 8601 time"):
        parse_time("tomorrow", "until")
    assert iso(T0) == "2026-12-03T12:00:00Z"


def berlin(day: int, hour: int, minute: int = 0) -> float:
    """Epoch seconds of December 2026, ``day`` at hour:minute in Berlin (UTC+1 in winter)."""
    return datetime(2026, 12, day, hour, minute, tzinfo=timezone.utc).timestamp() - 3600


def test_a_weekly_window_holds_on_its_weekdays_between_its_hours_in_its_time_zone() -> None:
    window = make_weekly("mon-fri", "22:00-23:00", "Europe/Berlin")
    assert window.weekdays == (0, 1, 2, 3, 4)
    made = silence(starts_at=T0 - 30 * 86400, ends_at=T0 + 30 * 86400, weekly=window)
    assert made.active_at(berlin(3, 22, 30))  # Thursday 22:30 Berlin = 21:30 UTC
    assert not made.active_at(berlin(3, 21, 59)) and not made.active_at(berlin(3, 23, 0))
    assert not made.active_at(berlin(5, 22, 30))  # Saturday
    assert made.state_at(berlin(3, 12)) == "waiting"
    assert made.to_json()["weekly"] == {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "between": "22:00-23:00",
                                        "tz": "Europe/Berlin"}


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    window = make_weekly("fri", "22:00-02:00", "Europe/Berlin")
    assert window.covers(berlin(4, 23))   # Friday 23:00
    assert window.covers(berlin(5, 1, 30))  # Saturday 01:30, still Friday's window
    assert not window.covers(berlin(5, 2)) and not window.covers(berlin(3, 23)) and not window.covers(berlin(4, 1))


def test_daylight_saving_time_moves_the_window_with_the_wall_clock() -> None:
    window = make_weekly("sun", "09:00-10:00", "Europe/Berlin")
    summer = datetime(2026, 7, 5, 7, 30, tzinfo=timezone.utc).timestamp()  # 09:30 CEST (UTC+2)
    winter = datetime(2026, 12, 6, 8, 30, tzinfo=timezone.utc).timestamp()  # 09:30 CET (UTC+1)
    assert window.covers(summer) and window.covers(winter) and not window.covers(summer + 3600)


@pytest.mark.parametrize(("days", "between", "tz", "message"), [
    ("mon-fri", "22:00-23:00", "Mars/Olympus",
     "weekly.tz: unknown time zone 'Mars/Olympus': give an IANA name such as Europe/Berlin or UTC"),
    ("mon-fri", "22:00-23:00", "", "weekly.tz: give an IANA time zone (Europe/Berlin, UTC)"),
    ("mon-fry", "22:00-23:00", "UTC", "weekly.weekdays: unknown weekday 'fry': use mon, tue, wed, thu, fri, sat, sun"),
    ("", "22:00-23:00", "UTC", "weekly.weekdays: expected weekdays such as mon-fri or sat,sun, got ''"),
    ("mon", "22:00", "UTC", "weekly.between: '22:00' is not HH:MM-HH:MM (22:00-23:00)"),
    ("mon", "25:00-26:00", "UTC", "weekly.between: '25:00' is not a time of day HH:MM (00:00 to 24:00)"),
    ("mon", "10:00-10:00", "UTC", "weekly.between: '10:00-10:00' is an empty window"),
])
def test_bad_windows_are_refused_naming_the_field(days: str, between: str, tz: str, message: str) -> None:
    with pytest.raises(SilenceError) as caught:
        make_weekly(days, between, tz)
    assert str(caught.value).startswith(message)


def test_weekday_lists_and_ranges_wrap_round_the_week() -> None:
    assert make_weekly("sat,sun", "00:00-24:00", "UTC").weekdays == (5, 6)
    assert make_weekly("fri-mon", "00:00-24:00", "UTC").weekdays == (0, 4, 5, 6)
    assert make_weekly(["Monday", "wed"], "00:00-24:00", "UTC").weekdays == (0, 2)


def test_a_stored_silence_reads_back_the_same() -> None:
    made = silence({"repo": "acme/api"}, weekly=make_weekly("sat,sun", "00:00-24:00", "UTC"))
    stored = made.to_json()
    back = silence_from_stored({**stored, "starts_at": made.starts_at, "ends_at": made.ends_at,
                                "created_at": made.created_at})
    assert back == made and back.matches({"repo": "acme/api"})


def test_a_request_starts_now_unless_told_and_lasts_for_or_until() -> None:
    made = silence_from_request({"match": {"repo": "a"}, "comment": "c", "for": "2h"}, "ada", T0)
    assert (made.starts_at, made.ends_at, made.created_at, made.created_by) == (T0, T0 + 7200, T0, "ada")
    later = silence_from_request({"match": {"repo": "a"}, "comment": "c", "starts_at": "2026-12-03T13:00:00Z",
                                  "for": "30m"}, "ada", T0)
    assert (later.starts_at, later.ends_at, later.state_at(T0)) == (T0 + 3600, T0 + 5400, "pending")
    until = silence_from_request({"match": {"repo": "a"}, "comment": "c", "ends_at": "2026-12-04T00:00:00Z"},
                                 "ada", T0)
    assert until.ends_at == T0 + 12 * 3600 and until.weekly is None
    window = silence_from_request({"match": {"repo": "a"}, "comment": "c", "for": "1w",
                                   "weekly": {"between": "02:00-03:00"}}, "ada", T0)
    assert window.weekly == make_weekly("mon-sun", "02:00-03:00", "UTC")
    for body, message in ((["x"], "body: expected a JSON object"),
                          ({"match": {"a": "b"}, "comment": "c", "for": 2}, "for: expected a duration such as 2h"),
                          ({"match": {"a": "b"}, "comment": "c", "for": "1h", "weekly": {"at": "x"}},
                           "weekly.at: unknown field; the fields are weekdays, between, tz"),
                          ({"match": {"a": "b"}, "comment": "c", "for": "1h", "weekly": {"tz": "UTC"}},
                           "weekly.between: give the hours of the window")):
        with pytest.raises(SilenceError) as caught:
            silence_from_request(body, "ada", T0)
        assert str(caught.value).startswith(message)
