"""Online anomaly detectors for numeric series: O(1) memory, no Kafka, no clock.

Each detector is fed one step (a second, or any bucket) at a time and says when it
starts and stops firing; `streams.alerts` binds them to the series of a live room.
"""

from streams.anomaly.conditional_drop import ConditionalDrop
from streams.anomaly.detectors import (
    FIRED,
    RESOLVED,
    CountThreshold,
    LevelDrop,
    RateDrop,
    RateSpike,
    RatioSurge,
)

__all__ = [
    "FIRED",
    "RESOLVED",
    "ConditionalDrop",
    "CountThreshold",
    "LevelDrop",
    "RateDrop",
    "RateSpike",
    "RatioSurge",
]
