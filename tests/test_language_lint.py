"""Dedup-key lint (engine/language/lint.py): warnings, each the whole message a user sees."""
from __future__ import annotations

import pytest
from builders import rules_from


def trigger(rule_id: str, on: str, key: str, extra: str = "") -> str:
    return (f"  - id: {rule_id}\n    on: {on}\n    severity: high\n    title: x\n"
            f"    incident_key: \"{key}\"\n{extra}")


def warnings(*triggers: str) -> list[str]:
    return [str(w) for w in rules_from("triggers:\n" + "".join(triggers), filename="rules/x.yaml").warnings]


def volatile(field: str, line: int = 6, rule: str = "t") -> str:
    return (f"rules/x.yaml:{line}: warning: rule {rule}: incident_key uses event.{field}, which changes on every "
            "event of the same problem: each event would open a new incident")


@pytest.mark.parametrize("key, expected", [
    ("{{ event.repo }}-{{ event.id }}", [volatile("id")]),
    ("{{ event.repo }}-{{ event.timestamp }}", [volatile("timestamp")]),
    ("{{ event.deploy.finished_at }}", [volatile("deploy.finished_at")]),
    ("{{ event['error_rate'] }}", [volatile("error_rate")]),
    ("{{ event.sustained_minutes }}-{{ event.uuid }}", [volatile("sustained_minutes"), volatile("uuid")]),
    # A nested id names the thing itself (a workflow run, an issue), not the event: no warning.
    ("{{ event.workflow_run.id }}", []),
    ("{{ event.repo | slug }}-{{ event.branch }}", []),
])
def test_a_key_reading_a_field_that_changes_every_event_is_a_warning(key: str, expected: list[str]) -> None:
    assert warnings(trigger("t", "build", key)) == expected


def test_a_volatile_field_read_through_a_var_is_named_with_the_var() -> None:
    found = warnings(trigger("t", "build", "k-{{ stamp }}", "    vars: {stamp: event.started_at}\n"))
    assert found == [volatile("started_at (via stamp)")]


def test_keys_of_the_same_shape_from_two_event_types_may_merge_and_are_a_warning() -> None:
    found = warnings(trigger("builds", "build", "{{ event.repo | slug }}-{{ event.branch }}"),
                     trigger("sentry", "sentry.errors", "{{ event.repo }}-{{ event.issue_id }}"))
    assert found == ["rules/x.yaml:11: warning: rule sentry: incident_key has the same shape as rule builds's "
                     "(build, rules/x.yaml:6): sentry.errors and build events could merge into one incident"]


def test_keys_of_one_shape_in_one_event_type_are_meant_to_merge() -> None:
    assert warnings(trigger("a", "build", "{{ event.repo }}-{{ event.branch }}"),
                    trigger("b", "build", "{{ event.repo | slug }}-{{ event.status }}")) == []


def test_triggers_of_two_types_that_set_the_same_literal_kind_are_meant_to_merge() -> None:
    kind = "    labels: {kind: sentry}\n"
    assert warnings(trigger("a", "sentry.errors", "sentry-{{ event.issue_id }}", kind),
                    trigger("b", "sentry.issue", "sentry-{{ event.data.issue.id }}", kind)) == []


def test_a_templated_kind_does_not_make_two_types_the_same_problem() -> None:
    kind = "    labels: {kind: \"{{ event.repo }}\"}\n"
    found = warnings(trigger("a", "build", "x-{{ event.repo }}", kind),
                     trigger("b", "rollback", "x-{{ event.repo }}", kind))
    assert found == ["rules/x.yaml:12: warning: rule b: incident_key has the same shape as rule a's "
                     "(build, rules/x.yaml:6): rollback and build events could merge into one incident"]
