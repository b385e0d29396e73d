"""Risk-phrase watch-lists: which lists a comment names, in one regex pass."""

from __future__ import annotations

import re


class KeywordMatcher:
    def __init__(self, lists: dict[str, list[str]]) -> None:
        self.list_of: dict[str, str] = {}
        for name, phrases in lists.items():
            for phrase in phrases:
                self.list_of[phrase.lower()] = name
        # Longest first, so 不是正品 wins over a shorter phrase inside it.
        alternatives = sorted(self.list_of, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def lists_named(self, text: str) -> set[str]:
        if self.pattern is None:
            return set()
        return {self.list_of[m] for m in self.pattern.findall(text.lower())}
