import logging

from streams.logs import RepeatLimiter, limit_repeats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def capture(name: str) -> tuple[logging.Logger, list[str]]:
    logger = logging.getLogger(name)
    logger.propagate = False
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    return logger, lines


def test_a_repeated_message_shows_once_per_interval_then_says_how_many_were_held():
    clock = Clock()
    logger, lines = capture("test_logs.repeats")
    logger.addFilter(RepeatLimiter(30.0, clock))
    for i in range(50):  # one reconnect error every 0.2 s for 10 s
        logger.error("Unable connect to node with id %s: %s", 111, f"refused {i}")
        clock.now += 0.2
    assert lines == ["Unable connect to node with id 111: refused 0"]
    clock.now = 131.0
    logger.error("Unable connect to node with id %s: %s", 111, "refused again")
    assert (
        lines[1]
        == "Unable connect to node with id 111: refused again (49 more like this in the last 31 s)"
    )
    # Another message is its own kind: not held back by the first.
    logger.error("Unable to update metadata from %s", [111])
    assert lines[2] == "Unable to update metadata from [111]"


def test_limit_repeats_reaches_every_existing_logger_under_the_prefix():
    parent, _ = capture("test_logs.lib")
    child, child_lines = capture("test_logs.lib.conn")
    other, other_lines = capture("test_logs.other")
    limiter = limit_repeats("test_logs.lib", RepeatLimiter(30.0, Clock()))
    assert limiter in parent.filters and limiter in child.filters
    assert limiter not in other.filters
    for _ in range(3):
        child.error("connection %s closed", "x")
        other.error("connection %s closed", "x")
    assert child_lines == ["connection x closed"]
    assert other_lines == ["connection x closed"] * 3
