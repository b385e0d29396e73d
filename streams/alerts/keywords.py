"""Risk-phrase watch-lists: which lists a comment names, in one regex pass."""

from __future__ import annotations

import re


class KeywordMatcher:
    def __init__(self, lists: dict[str, list[str]]) -> None:
        self.list_of: dict[str, str] = {}
        # Lists named come in the rules' order, whatever the process's string hashes: a
        # comment naming two lists starts their alerts in the same order in every run.
        self._rank = {name: rank for rank, name in enumerate(lists)}
        for name, phrases in lists.items():
            for phrase in phrases:
                self.list_of[phrase.lower()] = name
        # Longest first, so 不是正品 wins over a shorter phrase inside it.
        alternatives = sorted(self.list_of, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def lists_named(self, text: str) -> tuple[str, ...]:
        if self.pattern is None:
            return ()
        found = self.pattern.findall(text.lower())
        if not found:  # nearly every comment: no set to build and sort
            return ()
        named = {self.list_of[m] for m in found}
        return tuple(sorted(named, key=self._rank.__getitem__))
