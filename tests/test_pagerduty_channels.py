"""Channels (engine/pagerduty/channels.py): a failed announcement is counted for /metrics by channel name."""
from __future__ import annotations

import responses

from engine import metrics
from engine.pagerduty.channels import Notifier, payload

HOOK = "https://hooks.slack.test/services/T000/B000/secretpath"


@responses.activate
def test_a_failed_announcement_counts_for_its_channel_and_the_metric_names_no_url() -> None:
    responses.post(HOOK, status=500)
    notifier = Notifier([{"name": "ops", "url": HOOK, "kind": "slack", "announce": ("triggered",)}],
                        retries=0, synchronous=True)
    before = metrics.value("pagerules_channel_failures_total", channel="ops")
    notifier.announce("triggered", {"incident_key": "k", "title": "t", "severity": "high", "actor": "rules"})
    assert metrics.value("pagerules_channel_failures_total", channel="ops") == before + 1
    assert "secretpath" not in metrics.exposition()[0].decode()


def test_each_message_names_the_person_who_acted_and_quotes_a_resolution_message() -> None:
    assert payload("acknowledged", "slack", {"title": "db down", "actor": "alice"}) == {
        "text": ":eyes: Acknowledged by alice: db down"}
    assert payload("resolved", "slack", {"incident_key": "k", "actor": "alice", "message": "failed over"}) == {
        "text": ":white_check_mark: Resolved by alice: k (failed over)"}
    long = payload("resolved", "slack", {"incident_key": "k", "actor": "bob", "message": "x" * 900})["text"]
    assert long.endswith("(" + "x" * 500 + ")")
    assert payload("resolved", "json", {"incident_key": "k", "actor": "alice", "message": "failed over"}) == {
        "event": "resolved", "incident_key": "k", "actor": "alice", "message": "failed over"}
    assert payload("triggered", "slack", {"title": "t"}) == {"text": ":rotating_light: Triggered: t"}
