"""Writes the provisioned Grafana dashboards (deploy/grafana/dashboards/*.json).

The dashboards are generated so every panel has the same shape and the PromQL lives
in one readable list; `python deploy/grafana/build_dashboards.py` rewrites them and
a test checks the committed JSON is what this script produces.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
ROOM = 'room_id="$room_id"'


def panel(
    title: str,
    exprs: list[tuple[str, str]],
    kind: str = "timeseries",
    unit: str = "short",
    width: int = 12,
    height: int = 8,
) -> dict:
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"w": width, "h": height},
        "targets": [
            {"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def dashboard(
    uid: str,
    title: str,
    panels: list[dict],
    variables: list[dict] | None = None,
    annotations: list[dict] | None = None,
) -> dict:
    x = y = 0
    for i, p in enumerate(panels, start=1):  # flow layout, two 12-wide panels per row
        p["id"] = i
        if x + p["gridPos"]["w"] > 24:
            x, y = 0, y + 8
        p["gridPos"].update(x=x, y=y)
        x += p["gridPos"]["w"]
    return {
        "uid": uid,
        "title": title,
        "tags": ["liveroom"],
        "timezone": "browser",
        "refresh": "5s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "templating": {"list": variables or []},
        "annotations": {"list": annotations or []},
        "panels": panels,
    }


def overview() -> dict:
    return dashboard(
        "liveroom-overview",
        "Live rooms — overview",
        [
            panel("Live rooms", [("sum(liveroom_live_rooms)", "rooms")], "stat", width=6),
            panel(
                "Online viewers, all rooms",
                [("sum(liveroom_online_viewers)", "online")],
                "stat",
                width=6,
            ),
            panel(
                "GMV per minute, all rooms",
                [("sum(liveroom:gmv_yuan_per_minute:rate1m)", "GMV/min")],
                "stat",
                unit="currencyCNY",
                width=6,
            ),
            panel(
                "Firing alerts",
                [("sum(liveroom_alerts_firing) or vector(0)", "firing")],
                "stat",
                width=6,
            ),
            panel(
                "Top rooms by online viewers",
                [("topk(10, liveroom_online_viewers)", "{{room_id}}")],
                "bargauge",
            ),
            panel(
                "GMV per minute, top rooms",
                [("topk(10, liveroom:gmv_yuan_per_minute:rate1m)", "{{room_id}}")],
                unit="currencyCNY",
            ),
            panel(
                "Conversion (5 min), top rooms by viewers",
                [
                    (
                        'liveroom_conversion_ratio{window="5m"} and on(room_id) '
                        "topk(10, liveroom_online_viewers)",
                        "{{room_id}}",
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "Negative comment ratio (1 min), worst rooms",
                [('topk(10, liveroom_negative_comment_ratio{window="1m"})', "{{room_id}}")],
                unit="percentunit",
            ),
            panel(
                "Firing alerts by kind",
                [("sum by (kind, severity) (liveroom_alerts_firing)", "{{kind}} {{severity}}")],
                "table",
                width=24,
            ),
        ],
    )


def room() -> dict:
    variable = {
        "name": "room_id",
        "label": "room",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(liveroom_online_viewers, room_id)", "refId": "rooms"},
        "definition": "label_values(liveroom_online_viewers, room_id)",
        "refresh": 2,
        "sort": 1,
        "current": {},
    }
    annotation = {
        "name": "Room alerts",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "red",
        "expr": f"liveroom_alerts_firing{{{ROOM}}}",
        "titleFormat": "{{kind}} ({{severity}})",
        "step": "10s",
    }
    return dashboard(
        "liveroom-room",
        "Live room — drill-down",
        [
            panel(
                "Funnel per minute: entries → cart adds → orders",
                [
                    (f"liveroom:entries_per_minute:rate1m{{{ROOM}}}", "entries/min"),
                    (f"liveroom:cart_adds_per_minute:rate1m{{{ROOM}}}", "cart adds/min"),
                    (f"liveroom:orders_per_minute:rate1m{{{ROOM}}}", "orders/min"),
                ],
                "bargauge",
            ),
            panel(
                "Online viewers and PCU",
                [
                    (f"liveroom_online_viewers{{{ROOM}}}", "online"),
                    (f"liveroom_peak_online_viewers{{{ROOM}}}", "PCU"),
                ],
            ),
            panel(
                "Conversion ratio",
                [(f"liveroom_conversion_ratio{{{ROOM}}}", "{{window}}")],
                unit="percentunit",
            ),
            panel(
                "Cart and interaction ratios (5 min)",
                [
                    (f'liveroom_cart_ratio{{{ROOM}, window="5m"}}', "cart"),
                    (f'liveroom_interaction_ratio{{{ROOM}, window="5m"}}', "interaction"),
                ],
                unit="percentunit",
            ),
            panel(
                "GPM (GMV per 1000 views)",
                [(f"liveroom_gpm_yuan{{{ROOM}}}", "{{window}}")],
                unit="currencyCNY",
            ),
            panel(
                "GMV per minute and refunds",
                [
                    (f"liveroom:gmv_yuan_per_minute:rate1m{{{ROOM}}}", "GMV/min"),
                    (f"rate(liveroom_refunds_yuan_total{{{ROOM}}}[5m]) * 60", "refunds/min"),
                ],
                unit="currencyCNY",
            ),
            panel(
                "ROI (投产比: GMV / ad spend)",
                [(f"liveroom_roi{{{ROOM}}}", "{{window}}")],
            ),
            panel(
                "Ad spend per minute",
                [(f"rate(liveroom_spend_yuan_total{{{ROOM}}}[5m]) * 60", "spend/min")],
                unit="currencyCNY",
            ),
            panel(
                "Sentiment: negative comment ratio",
                [(f"liveroom_negative_comment_ratio{{{ROOM}}}", "{{window}}")],
                unit="percentunit",
            ),
            panel(
                "Comments per minute",
                [(f"liveroom:comments_per_minute:rate1m{{{ROOM}}}", "comments/min")],
            ),
            panel(
                "Last 10 minutes over the 10 before (1 = unchanged)",
                [(f"liveroom_window_change_ratio{{{ROOM}}}", "{{metric}}")],
            ),
            panel(
                "Percentile among rooms of the same audience band (1 = best)",
                [(f"liveroom_peer_percentile{{{ROOM}}}", "{{metric}}")],
                unit="percentunit",
            ),
        ],
        [variable],
        [annotation],
    )


def processor() -> dict:
    return dashboard(
        "liveroom-processor",
        "liveroom-streams — processor health",
        [
            panel(
                "Events processed per second by topic",
                [("liveroom:events_processed_per_second:rate1m", "{{topic}}")],
                unit="ops",
            ),
            panel(
                "Rejected per second by topic and reason",
                [("liveroom:events_rejected_per_second:rate5m", "{{topic}} {{reason}}")],
                unit="ops",
            ),
            panel("Consumer lag (records)", [("liveroom:consumer_lag_records:sum", "{{topic}}")]),
            panel(
                "Event lag p99 (processing time − event time)",
                [("liveroom:event_lag_seconds:p99_5m", "p99")],
                unit="s",
            ),
            panel(
                "Worker memory (RSS)",
                [('process_resident_memory_bytes{job="liveroom"}', "{{instance}}")],
                unit="bytes",
            ),
            panel(
                "Worker CPU",
                [('rate(process_cpu_seconds_total{job="liveroom"}[1m])', "{{instance}}")],
                unit="percentunit",
            ),
            panel(
                "Duplicates and late events per second",
                [
                    ("sum(rate(liveroom_duplicate_events_total[5m])) or vector(0)", "duplicates"),
                    ("sum(rate(liveroom_late_events_total[5m])) or vector(0)", "late"),
                ],
                unit="ops",
            ),
            panel(
                "State integrity (0 unless something is wrong: see the runbook)",
                [
                    (
                        "sum(liveroom_rooms_restored_without_base_total)",
                        "rooms restored without base",
                    ),
                    (
                        'sum(liveroom_offsets_passed_over_total{topic=~".*room-events"})',
                        "room-events offsets passed over",
                    ),
                ],
            ),
            panel(
                "Last restore from the state log (the worker is not ready meanwhile)",
                [('liveroom_state_restore_seconds{job="liveroom"}', "{{instance}}")],
                unit="s",
            ),
            panel(
                "Rooms exported and left out",
                [
                    ("sum(liveroom_live_rooms)", "live"),
                    ("sum(liveroom_rooms_unexported)", "unexported"),
                ],
            ),
        ],
    )


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for board in (overview(), room(), processor()):
        path = OUT / f"{board['uid']}.json"
        path.write_text(json.dumps(board, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
