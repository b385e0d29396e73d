"""The black-box dead-letter corpus (tests/integration/test_deadletter_corpus.py),
decoded in process: every record's rejects, with their array index and reason, as the
corpus expects. No broker: this is what `make sanitize` runs the C validator on."""

from __future__ import annotations

import time

from streams.events import KIND_NAMES, REASONS, decode_record

from ..integration.test_deadletter_corpus import corpus

TOPIC_KINDS = {"views": 0, "comments": 1, "carts": 2, "orders": 3}


def test_every_corpus_record_decodes_to_its_expected_rejects():
    now = int(time.time() * 1000)
    records = corpus(now)
    seen = set()
    for kind, value, expected in records:
        events, rejects = decode_record(value, TOPIC_KINDS[kind], now)
        order = lambda x: (x[0] is not None, x[0] or 0, x[1])  # noqa: E731
        got = sorted(((r.index, r.reason) for r in rejects), key=order)
        assert got == sorted(expected, key=order), (kind, value[:80])
        seen.update(reason for _, reason in expected)
        assert all(e[0] == TOPIC_KINDS[kind] for e in events)
    assert seen == set(REASONS)
    assert len(KIND_NAMES) >= 4
