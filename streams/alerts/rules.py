"""Alert rules: shipped defaults, an optional override file, per-room overrides."""

from __future__ import annotations

import datetime as dt
import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from streams.alerts.keywords import KeywordMatcher
from streams.alerts.rules_check import problems


class RulesError(ValueError):
    pass


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, table by table."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def _epoch_ms(value: Any, where: str) -> int:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise RulesError(f"{where}: give a time zone (e.g. +08:00)")
        return int(value.timestamp() * 1000)
    if isinstance(value, int):
        return value
    raise RulesError(f"{where}: expected a TOML date-time or epoch milliseconds, got {value!r}")


class AlertRules:
    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.rooms: dict[str, dict[str, Any]] = table.get("rooms", {})
        self.announced: dict[str, list[tuple[int, int]]] = {}
        for i, item in enumerate(table.get("announced", [])):
            where = f"announced[{i}]"
            try:
                window = (_epoch_ms(item["start"], where), _epoch_ms(item["end"], where))
                self.announced.setdefault(str(item["room_id"]), []).append(window)
            except KeyError as missing:
                raise RulesError(f"{where}: missing {missing}") from None
        self._per_room: dict[str, dict[str, Any]] = {}

    @classmethod
    def load(cls, path: str = "") -> AlertRules:
        text = resources.files(__package__).joinpath("default_rules.toml").read_text("utf-8")
        table = tomllib.loads(text)
        if path:
            where = f"LIVEROOM_ALERT_RULES={path}"
            try:
                text = Path(path).read_text("utf-8")
                over = tomllib.loads(text)
            except OSError as err:
                raise RulesError(f"{where}: cannot read it ({err.strerror})") from None
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise RulesError(f"{where}: not valid TOML: {err}") from None
            found = problems(over, table, text)
            if found:
                raise RulesError("\n".join(f"{where} line {n}: {what}" for n, what in found))
            table = merged(table, over)
        try:
            return cls(table)
        except RulesError as err:
            raise RulesError(f"LIVEROOM_ALERT_RULES={path}: {err}") from None

    @property
    def shards(self) -> dict[str, int]:
        """Rooms pinned to a shard count in the rules file's [shards] table."""
        return dict(self.table.get("shards", {}))

    def for_room(self, room_id: str) -> dict[str, Any]:
        rules = self._per_room.get(room_id)
        if rules is None:
            override = self.rooms.get(room_id)
            rules = merged(self.table, override) if override else self.table
            if len(self._per_room) < 100_000:
                self._per_room[room_id] = rules
        return rules

    def announced_at(self, room_id: str, ts_ms: int) -> bool:
        return any(start <= ts_ms < end for start, end in self.announced.get(room_id, ()))

    @cached_property
    def keywords(self) -> KeywordMatcher:
        return KeywordMatcher(self.table["keyword_hit"]["lists"])
