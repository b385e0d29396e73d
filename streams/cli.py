"""`liveroom` command line: demo | broker | worker | plan | loadtest | check-config."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import NoReturn

from streams import config
from streams.config import ConfigError, Settings

CONFIG_ERROR_EXIT = 2


def _fail(message: str) -> NoReturn:
    """Configuration errors: one line each on stderr, exit 2, no traceback."""
    for line in message.splitlines():
        print(f"liveroom: {line}", file=sys.stderr)
    sys.exit(CONFIG_ERROR_EXIT)


def validated(**overrides: object) -> tuple[Settings | None, list[str], list[str]]:
    """The settings, the errors in them or in the rules file, and warnings."""
    from streams.alerts.rules import AlertRules, RulesError

    warnings = config.unknown_variables(os.environ)
    errors: list[str] = []
    settings = None
    try:
        settings = config.load(**overrides)
    except ConfigError as exc:
        errors += str(exc).splitlines()
    rules = settings.alert_rules if settings else os.environ.get("LIVEROOM_ALERT_RULES", "")
    try:
        if rules == "" or os.path.isfile(rules):  # a missing file is a settings error above
            loaded = AlertRules.load(rules)
            if settings is not None:
                errors += [
                    f"LIVEROOM_ALERT_RULES={rules}: [shards] {room} = {n} is more shards than "
                    f"LIVEROOM_PARTITIONS={settings.partitions}: at most one shard a partition"
                    for room, n in loaded.shards.items()
                    if n > settings.partitions
                ]
    except RulesError as exc:
        errors += str(exc).splitlines()
    model = settings.sentiment_model if settings else ""
    if model:
        from streams.sentiment.adapt import ModelError, load_model

        try:
            load_model(model)
        except ModelError as exc:
            errors.append(f"LIVEROOM_SENTIMENT_MODEL={exc}")
    return settings, errors, warnings


def _settings(**overrides: object) -> Settings:
    """Settings for a command that starts something: every error stops it first."""
    settings, errors, warnings = validated(**overrides)
    for line in warnings:
        print(f"liveroom: warning: {line}", file=sys.stderr)
    if errors or settings is None:
        _fail("\n".join(errors))
    return settings


def cmd_check_config(args: argparse.Namespace) -> None:
    settings, errors, warnings = validated()
    for line in warnings:
        print(f"liveroom: warning: {line}", file=sys.stderr)
    if errors:
        _fail("\n".join(errors))
    rules = settings.alert_rules if settings and settings.alert_rules else "the shipped defaults"
    print(f"liveroom: configuration OK (alert rules: {rules})")


def cmd_broker(args: argparse.Namespace) -> None:
    from streams.broker import start_with_topics

    settings = _settings()
    stopped = threading.Event()  # handlers first: a signal during start-up stops cleanly too
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    broker = start_with_topics(settings, port=args.port)
    print(f"broker listening on {broker.bootstrap} (topics created; Ctrl-C stops)", flush=True)
    while not stopped.wait(0.5):
        if broker.process is not None and broker.process.poll() is not None:
            sys.exit(f"liveroom: broker exited with code {broker.process.returncode}")
    broker.stop()


def cmd_worker(args: argparse.Namespace) -> None:
    from streams.runtime.worker import run_worker

    settings = _settings()
    if not settings.kafka_bootstrap:
        _fail(
            "LIVEROOM_KAFKA_BOOTSTRAP is required for `liveroom worker` "
            "(host:port of a Kafka broker; `liveroom broker` starts one)"
        )
    # Topics are created and checked by the worker once the broker answers: it may start
    # before the broker does (streams.runtime.startup).
    sys.argv = [sys.argv[0], "worker"]  # Faust's Worker parses argv itself
    run_worker(settings, loglevel=args.loglevel)


def cmd_demo(args: argparse.Namespace) -> None:
    from streams.demo import run_demo

    run_demo(_settings(), alerting=args.alerting, break_after=args.break_after)


def cmd_plan(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from streams.plan import plan

    try:
        result = plan(
            args.rooms,
            args.events_per_second,
            args.viewers,
            hottest_room_events_per_s=args.hottest_room_events_per_second,
            replication=args.replication,
        )
    except ValueError as exc:
        sys.exit(f"liveroom plan: {exc}")
    table = Table(
        title=f"Capacity plan: {args.rooms:,} rooms, {args.events_per_second:,.0f} events/s, "
        f"{args.viewers:,} concurrent viewers"
    )
    for column in ("", "plan", "from"):
        table.add_column(column)
    for what, value, how in result.lines():
        table.add_row(
            what,
            value,
            how,
            style=None if result.hottest_room_fits or what != "hottest room" else "bold",
        )
    Console().print(table)


def cmd_loadtest(args: argparse.Namespace) -> None:
    from loadtest.runner import main as loadtest_main

    loadtest_main(args)


def cmd_sentiment_train(args: argparse.Namespace) -> None:
    from rich.console import Console

    from streams.sentiment import adapt, labels

    console = Console(stderr=True)
    try:
        read = labels.read(args.labels)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    for problem in read.problems[:20]:
        console.print(f"skipped {problem}")
    if len(read.problems) > 20:
        console.print(f"... and {len(read.problems) - 20} more rows skipped")
    with console.status("training") as status:
        try:
            model = adapt.train(read.rows, read.sources, progress=status.update)
        except adapt.ModelError as exc:
            _fail(str(exc))
    with open(args.out, "wb") as out:
        out.write(adapt.dumps(model))
    acc = model["accuracy"]
    test = "-" if acc["test"] is None else f"{acc['test']:.3f}"
    print(
        f"liveroom: {args.out}: {len(read.rows):,} rows ({len(read.problems)} skipped), "
        f"mix {model['mix']:g} (chosen on dev, accuracy {acc['dev']:.3f}), test {test}"
    )


def cmd_sentiment_eval(args: argparse.Namespace) -> None:
    from streams.sentiment import adapt, default_scorer, labels, report

    try:
        read = labels.read(args.labels)
        models = {
            args.model or "shipped": (
                adapt.load_model(args.model)[0] if args.model else default_scorer()
            ).score
        }
        if args.against:
            models[args.against] = adapt.load_model(args.against)[0].score
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    if read.problems:
        print(f"({len(read.problems)} rows skipped: {read.problems[0]} ...)")
    print(report.report(read.rows, models))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liveroom", description="Live-room stream analytics processor."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="the whole system on this machine, no setup",
        description="Embedded broker, a worker and simulated live rooms; a live per-room "
        "summary here, the live page and /metrics on LIVEROOM_METRICS_PORT. Ctrl-C stops "
        "everything it started.",
        epilog="examples:\n  liveroom demo            # then open http://127.0.0.1:9464/\n"
        "  liveroom demo --alerting # and watch a ViewerDrop reach Alertmanager",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--alerting",
        action="store_true",
        help="also Prometheus and Alertmanager from deploy/, and a room whose stream breaks",
    )
    demo.add_argument(
        "--break-after",
        type=float,
        default=60.0,
        help="with --alerting: seconds until the biggest room's stream is cut (default 60)",
    )
    demo.set_defaults(func=cmd_demo)
    broker = sub.add_parser(
        "broker",
        help="the embedded Kafka-protocol broker alone",
        epilog="example:\n  liveroom broker --port 9092 &\n"
        "  LIVEROOM_KAFKA_BOOTSTRAP=127.0.0.1:9092 liveroom worker",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    broker.add_argument("--port", type=int, default=9092, help="loopback port (default 9092)")
    broker.set_defaults(func=cmd_broker)
    worker = sub.add_parser(
        "worker",
        help="a stream worker against LIVEROOM_KAFKA_BOOTSTRAP",
        description="A stream-processing worker of the consumer group: settings from "
        "LIVEROOM_* variables (docs/operating.md). It may start before the broker: "
        "/readyz says why it is not ready until it answers.",
        epilog="example:\n  LIVEROOM_KAFKA_BOOTSTRAP=kafka-1:9092,kafka-2:9092 liveroom worker",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(func=cmd_worker)
    capacity = sub.add_parser(
        "plan",
        help="capacity plan for a peak from measured figures",
        epilog="example (a Double 11 night):\n"
        "  liveroom plan --rooms 5000 --events-per-second 500000 --viewers 5000000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    capacity.add_argument("--rooms", type=int, required=True, help="live rooms at the peak")
    capacity.add_argument(
        "--events-per-second", type=float, required=True, help="peak input events per second"
    )
    capacity.add_argument("--viewers", type=int, required=True, help="peak concurrent viewers")
    capacity.add_argument(
        "--hottest-room-events-per-second",
        type=float,
        default=None,
        help="the busiest room's own peak (default: a Zipf share of the total)",
    )
    capacity.add_argument(
        "--replication", type=int, default=3, help="Kafka replication factor (default 3)"
    )
    capacity.set_defaults(func=cmd_plan)
    load = sub.add_parser(
        "loadtest",
        help="the load-test harness",
        epilog="examples:\n  liveroom loadtest --scenario steady --duration 60\n"
        "  liveroom loadtest --scenario mega-room     # a head room split over 4 workers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("--scenario", default="steady", help="built-in name or a TOML file")
    load.add_argument("--duration", type=float, default=None, help="seconds")
    load.add_argument("--rate", type=float, default=None, help="offered events per second")
    load.add_argument("--batch", type=int, default=None, help="events per record")
    load.add_argument("--rooms", type=int, default=None)
    load.add_argument("--seed", type=int, default=None)
    load.add_argument(
        "--producers", type=int, default=1, help="producer processes (when one cannot keep up)"
    )
    load.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes in the consumer group (they split the partitions; "
        "default: the scenario's, 1 for most)",
    )
    load.add_argument(
        "--profile", action="store_true", help="sample the worker with py-spy: where time goes"
    )
    load.add_argument("--out", default=None, help="report folder (default: ./loadtest-reports/…)")
    load.set_defaults(func=cmd_loadtest)
    check = sub.add_parser(
        "check-config",
        help="validate the settings and the rules file; exit 2 and one line per error",
        epilog="example:\n  LIVEROOM_ALERT_RULES=rules.toml liveroom check-config",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.set_defaults(func=cmd_check_config)
    senti = sub.add_parser(
        "sentiment",
        help="train a comment-sentiment model on your own labels, or evaluate one",
        epilog="examples:\n  liveroom sentiment train --labels ours.csv --out ours.model\n"
        "  liveroom sentiment eval --labels held-out.csv --against ours.model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    senti_sub = senti.add_subparsers(dest="sentiment_command", required=True)
    train = senti_sub.add_parser(
        "train",
        help="learn n-gram weights from labelled comments (CSV or JSONL)",
        epilog="example:\n"
        "  liveroom sentiment train --labels a.csv --labels b.jsonl --out ours.model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--labels", action="append", required=True, help="CSV or JSONL file")
    train.add_argument("--out", required=True, help="the model file to write")
    train.set_defaults(func=cmd_sentiment_train)
    evaluate = senti_sub.add_parser(
        "eval",
        help="accuracy, confusion and calibration of one or two models on a labelled file",
        epilog="example:\n  liveroom sentiment eval --labels held-out.csv --against ours.model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("--labels", action="append", required=True, help="CSV or JSONL file")
    evaluate.add_argument("--model", default=None, help="a model file (default: the shipped one)")
    evaluate.add_argument("--against", default=None, help="a second model to compare")
    evaluate.set_defaults(func=cmd_sentiment_eval)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)
