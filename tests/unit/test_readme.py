"""README's configuration table lists exactly the settings the program reads."""

import re
from pathlib import Path

from streams import config


def test_readme_configuration_table_matches_settings():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    documented = re.findall(r"^\| `(LIVEROOM_[A-Z_]+)` \|", readme, flags=re.M)
    assert documented == [name for name, _, _ in config.describe()]
