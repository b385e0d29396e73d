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
    assert len(alerts) == 5
    for alert in alerts:
        assert f"alertname: {alert}" in tests, alert
        assert f"## {alert}" in runbook, alert
        assert f"RUNBOOK.md#{alert.lower()}" in rules, alert
