"""Records a room's snapshot holds until its next one, for every live room at once:
slotted dataclasses, read as the dicts they replaced were (`row["gmv_yuan"]`, `.get`),
and written by orjson as the same JSON objects, keys in field order.

At 5,000 rooms the snapshots' dicts added up: a window's figures (24 keys) took ~1.2 kB
as a dict and take ~0.2 kB as a record; a listed product (12 keys) 464 bytes, now 128.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any


class Figures:
    """Dict-style reads of a slotted dataclass's fields."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
