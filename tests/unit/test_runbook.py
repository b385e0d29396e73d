"""Every alert kind the worker sends has a runbook section its runbook_url points at."""

from pathlib import Path

from streams.alerts.records import RUNBOOK_ANCHORS
from streams.alerts.rules import AlertRules

RUNBOOK = (Path(__file__).parents[2] / "deploy" / "RUNBOOK.md").read_text()


def test_every_room_alert_kind_has_a_runbook_section_and_anchor():
    assert set(RUNBOOK_ANCHORS) == {
        "ViewerDrop",
        "TrafficSpike",
        "CheckoutStalled",
        "ProductCheckoutStalled",
        "ConversionDrop",
        "NegativeCommentSurge",
        "KeywordHit",
    }
    for kind, anchor in RUNBOOK_ANCHORS.items():
        assert f"\n## {kind}\n" in RUNBOOK, kind
        assert anchor == kind.lower()


def test_runbook_url_template_fills_the_anchor():
    rules = AlertRules.load().for_room("r")
    assert rules["runbook_url"].format(anchor="viewerdrop").endswith("RUNBOOK.md#viewerdrop")
