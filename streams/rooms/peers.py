"""Where a room stands among its peers: live rooms of the same audience band.

One sorted list of values per (band, metric), updated when a room's snapshot changes
(at most once per room per second): a percentile is two bisections, never a sort over
all rooms. With several workers each one ranks the rooms it holds, a hash-spread
sample of all rooms.
"""

from __future__ import annotations

import bisect
from typing import Any

# (lowest online viewers, band name), ascending.
BANDS = ((0, "0-99"), (100, "100-999"), (1_000, "1k-9.9k"), (10_000, "10k-99k"), (100_000, "100k+"))
# `liveroom_peer_percentile{metric}` values, read from the 5-minute window.
PEER_METRICS = ("conversion_ratio", "interaction_ratio", "gpm_yuan")
PEER_WINDOW = "5m"
MIN_PEERS = 5  # fewer rooms with a value in the band: no percentile


def band_of(online_viewers: int) -> str:
    name = BANDS[0][1]
    for lowest, band in BANDS:
        if online_viewers >= lowest:
            name = band
    return name


class PeerIndex:
    def __init__(self) -> None:
        self._values: dict[tuple[str, str], list[float]] = {}
        # room -> (band, {metric: value}, last observed at)
        self._rooms: dict[str, tuple[str, dict[str, float], float]] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def observe(self, snap: dict[str, Any], now: float) -> None:
        """Take the room's new snapshot into the index and set its `band` and `peers`
        ({metric: percentile in 0-1}) on it."""
        room_id = snap["room_id"]
        band = band_of(snap["online_viewers"])
        window = snap["windows"][PEER_WINDOW]
        values = {m: float(v) for m in PEER_METRICS if (v := window[m]) is not None}
        old_band, old_values, _ = self._rooms.get(room_id, (band, {}, 0.0))
        for metric in PEER_METRICS:  # move only the values that changed
            old, new = old_values.get(metric), values.get(metric)
            if old == new and old_band == band:
                continue
            if old is not None:
                ranked = self._values[(old_band, metric)]
                del ranked[bisect.bisect_left(ranked, old)]
            if new is not None:
                bisect.insort(self._values.setdefault((band, metric), []), new)
        self._rooms[room_id] = (band, values, now)
        snap["band"] = band
        snap["peers"] = {
            metric: pct
            for metric, value in values.items()
            if (pct := self.percentile(band, metric, value)) is not None
        }

    def percentile(self, band: str, metric: str, value: float) -> float | None:
        """Mid-rank of `value` among the band's values (itself included): 0 the lowest,
        1 the highest, ties share the middle. None below MIN_PEERS rooms."""
        ranked = self._values.get((band, metric), [])
        n = len(ranked)
        if n < MIN_PEERS:
            return None
        below = bisect.bisect_left(ranked, value)
        equal = bisect.bisect_right(ranked, value) - below
        return (below + (equal - 1) / 2) / (n - 1)

    def forget(self, room_id: str) -> None:
        entry = self._rooms.pop(room_id, None)
        if entry is None:
            return
        band, values, _ = entry
        for metric, value in values.items():
            ranked = self._values[(band, metric)]
            del ranked[bisect.bisect_left(ranked, value)]

    def expire(self, horizon: float) -> None:
        """Forget rooms not observed since `horizon` (gone idle, or moved to another worker)."""
        for room_id in [r for r, (_, _, seen) in self._rooms.items() if seen < horizon]:
            self.forget(room_id)
