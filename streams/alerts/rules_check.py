"""Validation of an alert rules file against the shipped defaults' shape.

An override file may only name tables and keys the defaults have (a misspelt table
would otherwise be ignored in silence, and an operator would believe an alert tuned),
with values of the defaults' types. Each problem is one line naming the file, the line,
the key, the value and what is expected, with the closest known name for a typo.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from streams.rooms.shards import ROOM_ID

SEVERITIES = ("warning", "critical")
# Tables whose keys are the operator's own names (keyword lists and their severities).
FREE_KEYS = {("keyword_hit", "lists"), ("keyword_hit", "severity")}
ANNOUNCED_KEYS = {"room_id", "start", "end"}


def _header_path(header: str) -> tuple[str, ...]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', header)
    return tuple(next(p for p in groups if p) if any(groups) else "" for groups in parts)


def line_index(text: str) -> dict[tuple[str, ...], int]:
    """The line of each table header and key (best effort: dotted keys inside a line
    are given their table's line)."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.split("#", 1)[0].strip()
        header = re.match(r"^\[\[?\s*(.+?)\s*\]\]?$", stripped)
        if header:
            table = _header_path(header.group(1))
            lines.setdefault(table, n)
            continue
        key = re.match(r'^("[^"]*"|[A-Za-z0-9_-]+)\s*=', stripped)
        if key:
            lines.setdefault((*table, key.group(1).strip('"')), n)
    return lines


def _expected(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number >= 0"
    if isinstance(default, float):
        return "a number >= 0"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, list):
        return "a list of strings"
    return "a table"


def _fits(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(default, int):
        return isinstance(value, int) and value >= 0
    if isinstance(default, float):
        return isinstance(value, int | float) and value >= 0
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, dict)


def problems(over: dict[str, Any], defaults: dict[str, Any], text: str) -> list[tuple[int, str]]:
    """(line, problem) for everything in `over` the defaults do not allow."""
    lines = line_index(text)
    out: list[tuple[int, str]] = []

    def line_of(path: tuple[str, ...]) -> int:
        """The line naming `path`, or the first line inside it (a table only named by
        its sub-tables' headers), or its table's."""
        within = [n for key, n in lines.items() if key[: len(path)] == path]
        if within:
            return min(within)
        for n in range(len(path) - 1, 0, -1):
            if path[:n] in lines:
                return lines[path[:n]]
        return 0

    def walk(table: dict[str, Any], shape: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, value in table.items():
            here = (*path, key)
            name = ".".join(here)
            if path[-2:] in FREE_KEYS or path[-3:-1] in FREE_KEYS:
                default = shape.get(key, next(iter(shape.values()), ""))
            elif key not in shape:
                close = difflib.get_close_matches(key, list(shape), n=1)
                hint = f" (did you mean {'.'.join((*path, close[0]))}?)" if close else ""
                known = ", ".join(sorted(shape))
                out.append((line_of(here), f"{name}: no such rule{hint}; known here: {known}"))
                continue
            else:
                default = shape[key]
            if isinstance(default, dict):
                if not isinstance(value, dict):
                    out.append((line_of(here), f"{name} = {value!r}: expected a table"))
                else:
                    walk(value, default, here)
            elif key == "severity" or path[-2:] == ("keyword_hit", "severity"):
                if value not in SEVERITIES:
                    out.append((line_of(here), f"{name} = {value!r}: expected warning or critical"))
            elif not _fits(value, default):
                out.append((line_of(here), f"{name} = {value!r}: expected {_expected(default)}"))

    for key, value in over.items():
        if key == "shards":  # [shards] room_id = count: split rooms (streams.rooms.shards)
            if not isinstance(value, dict):
                out.append((line_of(("shards",)), "shards: expected a table of room_id = count"))
                continue
            for room_id, count in value.items():
                if not ROOM_ID.match(room_id):
                    out.append((line_of(("shards", room_id)), f"shards.{room_id}: not a room id"))
                elif isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 256:
                    out.append(
                        (
                            line_of(("shards", room_id)),
                            f"shards.{room_id} = {count!r}: expected 1-256",
                        )
                    )
            continue
        if key == "rooms":
            if not isinstance(value, dict):
                out.append((line_of(("rooms",)), 'rooms: expected tables [rooms."<room_id>"]'))
                continue
            shape = {k: v for k, v in defaults.items() if k not in ("rooms", "announced")}
            for room_id, room in value.items():
                if isinstance(room, dict):
                    walk(room, shape, ("rooms", room_id))
        elif key == "announced":
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                extra = set(item) - ANNOUNCED_KEYS if isinstance(item, dict) else {"?"}
                if extra:
                    out.append(
                        (line_of(("announced",)), f"announced[{i}]: keys are room_id, start, end")
                    )
        else:
            walk({key: value}, {**defaults, "rooms": {}, "announced": [], "shards": {}}, ())
    return out
