"""deploy/: Prometheus config and rules pass promtool's checks and unit tests."""

import subprocess
from pathlib import Path

import pytest

from .conftest import require_tool

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).parents[2] / "deploy"


def promtool(*args: str) -> str:
    result = subprocess.run(
        [require_tool("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=DEPLOY / "prometheus",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_prometheus_config_and_rules_are_valid():
    promtool("check", "config", "prometheus.yml")
    out = promtool(
        "check", "rules", *sorted(str(p) for p in (DEPLOY / "prometheus/rules").glob("*.yml"))
    )
    assert "SUCCESS" in out


def test_every_alert_rule_has_a_unit_test_and_a_runbook_section():
    out = promtool("test", "rules", "tests/liveroom-alerts.test.yml")
    assert "SUCCESS" in out
    rules = (DEPLOY / "prometheus/rules/liveroom-alerts.yml").read_text()
    tests = (DEPLOY / "prometheus/tests/liveroom-alerts.test.yml").read_text()
    runbook = (DEPLOY / "RUNBOOK.md").read_text()
    alerts = [
        line.split(":", 1)[1].strip()
        for line in rules.splitlines()
        if line.strip().startswith("- alert:")
    ]
    assert len(alerts) == 8
    for alert in alerts:
        assert f"alertname: {alert}" in tests, alert
        assert f"## {alert}" in runbook, alert
        assert f"RUNBOOK.md#{alert.lower()}" in rules, alert


def test_alertmanager_config_is_valid():
    result = subprocess.run(
        [require_tool("amtool"), "check-config", str(DEPLOY / "alertmanager/alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=ViewerDrop", "room_id=r1"], "oncall-pager"),
        (["severity=warning", "alertname=NegativeCommentSurge", "room_id=r1"], "ops-chat"),
        (["severity=warning", "alertname=LiveroomRoomCapReached"], "ops-chat"),
    ],
)
def test_alerts_route_by_severity(labels, receiver):
    result = subprocess.run(
        [
            require_tool("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={DEPLOY / 'alertmanager/alertmanager.yml'}",
            *labels,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == receiver, result.stdout + result.stderr
