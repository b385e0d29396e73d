"""The docs are checked against the code: links resolve, the configuration reference
names exactly the settings, the metrics reference exactly the exported families, and a
command shown in a fenced block exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.cli import build_parser
from streams.config import describe
from streams.exporter import build_registry
from streams.rooms.metrics import snapshot
from streams.rooms.room import RoomSettings, RoomState

from .helpers import cart, comment, enter, order

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "RUNBOOK.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```(?:sh|bash|console)?\n(.*?)```", re.S)


def table_names(text: str, heading: str, pattern: str) -> set[str]:
    """Names in the first column of the table under `heading` that match `pattern`."""
    section = text.split(heading, 1)[1]
    section = re.split(r"\n#{1,3} ", section, maxsplit=1)[0]
    return set(re.findall(r"^\| `(" + pattern + r")`", section, re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_points_at_something(page: Path):
    for target in LINK.findall(page.read_text()):
        if re.match(r"(https?:|mailto:|#)", target):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(ROOT):
            continue  # outside the repository (the shared SPEC): not in a clone to check
        assert path.exists(), f"{page.name}: {target} points at nothing"


def test_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_bytes()) <= 15_000


def test_the_configuration_reference_names_exactly_the_settings():
    documented = table_names(
        (ROOT / "docs" / "operating.md").read_text(), "## Configuration", r"LIVEROOM_[A-Z0-9_]+"
    )
    settings = {name for name, _, _ in describe()}
    assert settings - documented == set(), "settings missing from docs/operating.md"
    assert documented - settings == set(), "docs/operating.md names settings that do not exist"


def exported_families() -> set[str]:
    room = RoomState("r", RoomSettings())
    for i in range(10):
        for make in (enter, comment, cart):
            room.apply(make(f"u{i}"))
        room.apply(order(f"u{i}", 5.0))
    # Opt-in families too (per-product series): the reference documents them.
    registry, _ = build_registry(lambda: [snapshot(room)], max_rooms=10, product_series=3)
    names = set()
    for family in text_string_to_metric_families(registry.render().decode()):
        if family.name.endswith("_created") or family.name.startswith("process_"):
            continue
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def test_the_metrics_reference_names_exactly_the_exported_families():
    documented = table_names(
        (ROOT / "docs" / "metrics.md").read_text(), "## Every family", r"liveroom_[a-z0-9_]+"
    )
    exported = exported_families()
    assert exported - documented == set(), "families missing from docs/metrics.md"
    assert documented - exported == set(), "docs/metrics.md names families not exported"


def shown_commands() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text()):
            for line in block.splitlines():
                words = line.split("#", 1)[0].split()
                if words and words[0] in ("liveroom", "make"):
                    out.append((page.name, " ".join(words)))
    return out


def test_every_command_shown_exists():
    parser = build_parser()
    subcommands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    shown = shown_commands()
    assert len(shown) >= 5
    for page, command in shown:
        tool, _, rest = command.partition(" ")
        word = rest.split(" ", 1)[0]
        known = subcommands if tool == "liveroom" else targets
        assert word in known, f"{page}: `{command}`: no such {tool} command"


def test_every_command_s_help_ends_with_an_example():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    listed = parser.format_help()
    for name, sub in choices.items():
        assert name in listed  # `liveroom --help` lists it with its line
        text = sub.format_help().rstrip()
        tail = text[text.rfind("example") :]
        assert "example" in text and "liveroom" in tail, name
