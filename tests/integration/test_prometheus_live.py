"""A real Prometheus scrapes a real worker fed by the simulator; every recording rule
returns data and every alert expression evaluates."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from streams.traffic.model import TrafficModel

from .conftest import running_prometheus, wait_until

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules"


# Panels fed by features still to come (comment sentiment, room alerts): they must
# evaluate, and have no data until those land.
def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard, panel or annotation title, expression) of every provisioned dashboard."""
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            out += [(board["uid"], panel["title"], t["expr"]) for t in panel["targets"]]
        out += [(board["uid"], a["name"], a["expr"]) for a in board["annotations"]["list"]]
    return out


def rule_exprs(kind: str) -> dict[str, str]:
    """{record or alert name: expression} from a rules file, without a YAML dependency."""
    import re

    text = (RULES / f"liveroom-{kind}.yml").read_text()
    out = {}
    for match in re.finditer(
        r"- (record|alert): (\S+)\n(?:\s+#.*\n)*\s+expr: (\|\n(?:\s{10,}.*\n)+|.*\n)", text
    ):
        expr = match.group(3)
        out[match.group(2)] = " ".join(expr.strip("|\n").split())
    return out


def query(port: int, expr: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_prometheus_evaluates_every_rule_against_a_live_worker(stack, tmp_path):
    worker = stack.worker()
    worker.wait_ready()
    model = TrafficModel(rooms=6, total_viewers=600, seed=2, ramp_s=1)
    scrape_and_rules = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}/liveroom-recording.yml', '{RULES}/liveroom-alerts.yml']\n"
        "scrape_configs:\n"
        "  - job_name: liveroom\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{worker.port}']}}]\n"
    )
    with running_prometheus(tmp_path, scrape_and_rules) as prom_port:
        busiest = max(model.rooms, key=lambda r: r.peak_viewers).room_id
        records = rule_exprs("recording")
        assert len(records) == 9

        def everything_recorded() -> bool:
            for t in range(2):  # keep traffic flowing while Prometheus collects samples
                now = int(time.time() * 1000)
                for kind, events in model.second(t, now).items():
                    by_room = defaultdict(list)
                    for event in events:
                        by_room[event["room_id"]].append(event)
                    for room_events in by_room.values():
                        stack.produce(kind, room_events)
            stack.produce("orders", b"not json")  # keeps the rejected counter moving
            # A refund wave in the busiest room keeps a KeywordHit firing for the alert panels.
            wave = [
                {
                    "event_id": f"kw-{time.time_ns()}-{i}",
                    "room_id": busiest,
                    "user_id": f"kw{i}",
                    "ts": int(time.time() * 1000),
                    "text": "不发货 要退款",
                }
                for i in range(3)
            ]
            stack.produce("comments", wave)
            stack.flush()
            return all(query(prom_port, name)["data"]["result"] for name in records)

        wait_until(everything_recorded, 90, "every recording rule returns data", interval=1.0)
        alerts = rule_exprs("alerts")
        # every rule of the file, those with a comment above their expression too
        assert len(alerts) == (RULES / "liveroom-alerts.yml").read_text().count("- alert:")
        for name, expr in alerts.items():
            answer = query(prom_port, expr)
            assert answer["status"] == "success", (name, answer)

        panels = dashboard_exprs()
        assert len(panels) >= 25

        # Comparisons exist only with history and peers this short run cannot have: a
        # room's 20 minutes of event time, and 5 rooms in its audience band. They must
        # still evaluate (tests/unit/test_comparisons.py and the page test check values).
        may_be_empty = {"liveroom_window_change_ratio", "liveroom_peer_percentile"}

        def panels_with_data() -> list[tuple[str, str, str]]:
            empty = []
            for board, title, expr in panels:
                answer = query(prom_port, expr.replace("$room_id", busiest))
                assert answer["status"] == "success", (board, title, answer)
                if not answer["data"]["result"] and expr.split("{")[0] not in may_be_empty:
                    empty.append((board, title, expr))
            return empty

        wait_until(
            lambda: everything_recorded() and not panels_with_data(),
            60,
            "every dashboard panel returns data",
        )
