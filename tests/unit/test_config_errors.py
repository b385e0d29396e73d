"""A bad setting or rules-file value stops the program at start: exit 2, one line per
error naming the variable or file, the line, the key, the value and what is expected."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from streams import config
from streams.alerts.rules import AlertRules, RulesError

DEFAULTS = tomllib.loads(
    resources.files("streams.alerts").joinpath("default_rules.toml").read_text("utf-8")
)


def leaves(table: dict[str, Any], path: tuple[str, ...] = ()):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from leaves(value, (*path, key))
        else:
            yield (*path, key), value


def bad_value(key: str, default: Any) -> str:
    """A TOML value of the wrong type (or out of range) for a key."""
    if key == "severity" or (isinstance(default, str) and default in ("warning", "critical")):
        return '"loud"'
    if isinstance(default, bool | str):
        return "7"
    if isinstance(default, list):
        return '"one phrase, not a list"'
    if isinstance(default, int | float):
        return '"lots"' if len(key) % 2 else "-1"
    raise AssertionError(key)


def as_toml(path: tuple[str, ...], value: str) -> str:
    table = ".".join(f'"{p}"' if not p.isidentifier() else p for p in path[:-1])
    return (f"[{table}]\n" if table else "") + f"# a comment line\n{path[-1]} = {value}\n"


KEYS = list(leaves(DEFAULTS))


@pytest.mark.parametrize("path,default", KEYS, ids=[".".join(p) for p, _ in KEYS])
def test_a_bad_value_for_each_rules_key_is_one_line_naming_it(tmp_path: Path, path, default):
    rules = tmp_path / "rules.toml"
    value = bad_value(path[-1], default)
    rules.write_text(as_toml(path, value))
    with pytest.raises(RulesError) as caught:
        AlertRules.load(str(rules))
    lines = str(caught.value).splitlines()
    assert len(lines) == 1
    line = 3 if len(path) > 1 else 2
    assert lines[0].startswith(f"LIVEROOM_ALERT_RULES={rules} line {line}: {'.'.join(path)} = ")
    assert "expected" in lines[0]


def test_the_same_key_in_a_room_table_is_checked_too(tmp_path: Path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[rooms."room-001".viewer_drop.online]\nratio = "lots"\n')
    with pytest.raises(RulesError, match=r"line 2: rooms.room-001.viewer_drop.online.ratio"):
        AlertRules.load(str(rules))


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "[viewer_drop.onlien]\nratio = 0.3\n",
            "line 1: viewer_drop.onlien: no such rule (did you mean viewer_drop.online?)",
        ),
        ("[rules.ViewerDrop]\nratio = 0.3\n", "line 1: rules: no such rule"),
        (
            "[viewer_drop.online]\nratoi = 0.3\n",
            "line 2: viewer_drop.online.ratoi: no such rule (did you mean viewer_drop.online.ratio?)",
        ),
        ('[keyword_hit.lists]\nmine = ["假货", 3]\n', "line 2: keyword_hit.lists.mine = "),
        ("a = = 1\n", "not valid TOML: Invalid value (at line 1, column 5)"),
        (
            '[[announced]]\nroom_id = "r"\nstart = 1\nstop = 2\n',
            "announced[0]: keys are room_id, start, end",
        ),
    ],
)
def test_unknown_tables_and_keys_are_errors_with_the_closest_name(tmp_path: Path, text, expected):
    rules = tmp_path / "rules.toml"
    rules.write_text(text)
    with pytest.raises(RulesError) as caught:
        AlertRules.load(str(rules))
    assert expected in str(caught.value)


def test_the_rules_file_pins_split_rooms_and_checks_them(tmp_path: Path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[shards]\n"head-room" = 4\n')
    assert AlertRules.load(str(rules)).shards == {"head-room": 4}
    rules.write_text('[shards]\n"head-room" = 0\n"b@d" = 2\n')
    with pytest.raises(RulesError) as caught:
        AlertRules.load(str(rules))
    assert "line 2: shards.head-room = 0: expected 1-256" in str(caught.value)
    assert "line 3: shards.b@d: not a room id" in str(caught.value)
    rules.write_text('[shards]\n"head-room" = 16\n')
    done = liveroom("check-config", env={"LIVEROOM_ALERT_RULES": str(rules)})
    assert done.returncode == 2 and "[shards] head-room = 16 is more shards" in done.stderr


def test_operator_named_keyword_lists_and_their_severity_are_accepted(tmp_path: Path):
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[keyword_hit.lists]\nmine = ["假货"]\n[keyword_hit.severity]\nmine = "critical"\n'
    )
    assert AlertRules.load(str(rules)).table["keyword_hit"]["lists"]["mine"] == ["假货"]


SETTINGS_WITH_PARSERS = [f for f in dataclasses.fields(config.Settings) if f.metadata["parse"]]


@pytest.mark.parametrize("field", SETTINGS_WITH_PARSERS, ids=lambda f: f.name)
def test_a_bad_value_for_each_setting_is_one_line_naming_it(field):
    name = config.env_name(field.name)
    with pytest.raises(config.ConfigError) as caught:
        config.load({name: "-1 not/a valid:value\x00"})
    lines = str(caught.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}=") and "expected" in lines[0]


def test_every_setting_error_is_reported_not_only_the_first():
    with pytest.raises(config.ConfigError) as caught:
        config.load({"LIVEROOM_METRICS_PORT": "x", "LIVEROOM_MAX_ROOMS": "0"})
    assert len(str(caught.value).splitlines()) == 2


def liveroom(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVEROOM_")}
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_and_worker_exit_2_with_one_line_per_error(tmp_path: Path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[viewer_drop.onlien]\nratio = 0.3\n[viewer_drop.online]\nratio = "lots"\n')
    env = {"LIVEROOM_ALERT_RULES": str(rules), "LIVEROOM_METRICS_PORT": "abc"}
    for command in (["check-config"], ["worker"]):
        done = liveroom(*command, env={**env, "LIVEROOM_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 3 and "Traceback" not in done.stderr
        assert (
            lines[0]
            == "liveroom: LIVEROOM_METRICS_PORT='abc' is not valid: expected a TCP port 0-65535"
        )
        assert (
            "line 1: viewer_drop.onlien: no such rule (did you mean viewer_drop.online?)"
            in lines[1]
        )
        assert "line 4: viewer_drop.online.ratio = 'lots': expected a number >= 0" in lines[2]
    good = liveroom("check-config", env={"LIVEROOM_MAX_ROOM": "3"})
    assert good.returncode == 0 and "configuration OK" in good.stdout
    assert "LIVEROOM_MAX_ROOM is not a setting (did you mean LIVEROOM_MAX_ROOMS?)" in good.stderr
