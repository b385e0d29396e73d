"""The live page's sparkline per room: points in time order, the latest of a step
winning, capped at TRAIL_POINTS, written as [t_ms, online, GMV] with ints as ints."""

from __future__ import annotations

import orjson

from streams.live.view import TRAIL_POINTS, TRAIL_STEP_S, LiveView

T0 = 1_765_000_000  # seconds, a multiple of the step


def _snap(online: int, gmv: float) -> dict:
    return {"room_id": "r", "online_viewers": online, "windows": {"1m": {"gmv_yuan": gmv}}}


def test_a_trail_keeps_the_latest_point_of_each_step_and_the_last_few_steps():
    view = LiveView()
    view.observe(_snap(10, 1.5), T0)
    view.observe(_snap(12, 2.5), T0 + 3)  # the same 10 s step: replaces the point
    assert view._trail("r") == [[T0 * 1000, 12, 2.5]]
    for k in range(1, TRAIL_POINTS + 5):
        view.observe(_snap(100 + k, float(k)), T0 + k * TRAIL_STEP_S)
    trail = view._trail("r")
    assert len(trail) == TRAIL_POINTS
    first = TRAIL_POINTS + 4 - TRAIL_POINTS + 1  # the oldest step kept
    assert trail[0] == [(T0 + first * TRAIL_STEP_S) * 1000, 100 + first, float(first)]
    assert trail[-1] == [(T0 + (TRAIL_POINTS + 4) * TRAIL_STEP_S) * 1000, 134, 34.0]
    assert orjson.dumps(trail[-1]) == b"[1765000340000,134,34.0]"
    assert view._trail("gone") == []
    view.keep_only([])
    assert view._trail("r") == []
