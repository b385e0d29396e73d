"""The alert record of SPEC.md: one per transition (firing, then resolved)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

FIRING, RESOLVED_STATUS = "firing", "resolved"

RUNBOOK_ANCHORS = {
    "ViewerDrop": "viewerdrop",
    "TrafficSpike": "trafficspike",
    "CheckoutStalled": "checkoutstalled",
    "ProductCheckoutStalled": "productcheckoutstalled",
    "ConversionDrop": "conversiondrop",
    "NegativeCommentSurge": "negativecommentsurge",
    "KeywordHit": "keywordhit",
}


def iso(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, as Alertmanager writes times."""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def alert_id(room_id: str, kind: str, key: str, starts_at_ms: int) -> str:
    """The same incident gets the same id on every worker and after any replay."""
    return hashlib.sha1(f"{room_id}|{kind}|{key}|{starts_at_ms}".encode()).hexdigest()[:16]


def identity(record: dict[str, Any]) -> tuple[str, str, str]:
    return record["room_id"], record["kind"], record["key"]


def firing_record(
    *,
    room_id: str,
    kind: str,
    key: str,
    severity: str,
    starts_at_ms: int,
    summary: str,
    description: str,
    value: float,
    threshold: float,
    baseline: float,
    samples: list[str],
    rules: dict[str, Any],
) -> dict[str, Any]:
    return {
        "alert_id": alert_id(room_id, kind, key, starts_at_ms),
        "kind": kind,
        "key": key,
        "room_id": room_id,
        "severity": severity,
        "status": FIRING,
        "starts_at": iso(starts_at_ms),
        "starts_at_ms": starts_at_ms,
        "ends_at": None,
        "ends_at_ms": None,
        "summary": summary,
        "description": description,
        "value": round(value, 4),
        "threshold": round(threshold, 4),
        "baseline": round(baseline, 4),
        "samples": samples,
        "runbook_url": rules["runbook_url"].format(anchor=RUNBOOK_ANCHORS.get(kind, "")),
        "dashboard_url": rules["dashboard_url"].format(room_id=room_id),
    }


def resolved_record(firing: dict[str, Any], ends_at_ms: int, why: str) -> dict[str, Any]:
    return {
        **firing,
        "status": RESOLVED_STATUS,
        "ends_at": iso(ends_at_ms),
        "ends_at_ms": ends_at_ms,
        "description": f"{firing['description']} Resolved: {why}",
    }
