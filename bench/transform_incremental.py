"""Transform speed: an incremental ``dbt build`` for one new hour against a full rebuild.

    .venv/bin/python bench/transform_incremental.py            # 30 days of 1 M/day, 4 M hour
    .venv/bin/python bench/transform_incremental.py --days 2 --rows-per-day 20000 \\
        --hour-rows 50000                                 # smoke run

What it measures: with ``--days`` of medium-scale history in the
landing tables (``--rows-per-day`` observatory telemetry records a day, plus every other
entity at the proportions of ``_history.MIX``), the wall time of ``dbt build`` (the whole
project: models and their tests, dbt's start-up included) after one new hour of a large
deployment lands (``--hour-rows`` telemetry records plus the other modules' hour), side by
side with ``dbt build --full-refresh`` over the same data. Target: the hour in <= 60 s on
this machine, and flat as history grows, which the run shows by timing a new hour twice:
after ``--early-days`` of history and again after ``--days``. ``--hours 2`` times a second
big hour after it, which lands in the partitions the first one filled (a day partition,
unless ``--dbt-var 'fact_partition_span={observatory: 1 hour}'``).

How, in one private PostgreSQL cluster (durability off, tuned for bulk work):

1. the landing tables are created by ``warehouse.ensure_landing_tables`` and filled inside
   PostgreSQL (``_history.load_span``: ``INSERT ... SELECT`` over ``generate_series``,
   deterministic), window by window as the DAGs load them, each window with the
   ``_loaded_at`` of its load a few minutes after its end; the data ends an hour ago;
2. ``--early-days`` of history, a first ``dbt build``, ``VACUUM ANALYZE`` (what
   autovacuum would have done by then); one big hour lands; *timed*: ``dbt build``;
3. the rest of the history lands and is merged by ``dbt build`` (a catch-up, reported);
   ``VACUUM ANALYZE``; a second big hour lands; *timed*: ``dbt build``;
4. *timed*: ``dbt build --full-refresh`` over everything (``--no-full-rebuild`` skips it:
   it holds the old and the new facts at once, which 30 days of 1 M/day may not leave room
   for; time it on fewer ``--days``).

It prints one table (contender, rows, seconds, rows/s; the rows are the landing rows the
build had to take in) and, per timed build, its slowest nodes from dbt's
``run_results.json`` (models and tests) and its slowest database statements, each statement
of dbt's multi-statement strings apart (``pg_stat_statements``, where the server has it).
The dbt project is snapshotted at the start, so edits to ``dbt_project/`` during the run
do not change it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from _dbt import (
    DATABASE,
    Dbt,
    DbtRun,
    Statement,
    name_values,
    print_sizes,
    print_slowest,
    print_statements,
    release,
    reset_statements,
    slowest_statements,
    start_cluster,
    warn_if_short_of_disk,
)
from _history import DAY, HOUR, LoadedSpan, floor_hour, load_span, vacuum_analyze

TARGET_SECONDS = 60.0
SIZES = (
    "observatory__metrics",
    "fct_requests",
    "agg_model_latency_hourly",
    "fct_cost_records",
    "agg_costs_hourly",
    "fct_violations",
)


@dataclass(frozen=True)
class Timed:
    contender: str
    history: str
    rows: int  # landing rows the build took in
    run: DbtRun
    statements: list[Statement]  # its slowest database statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of history (default 30)")
    parser.add_argument(
        "--early-days",
        type=int,
        default=None,
        help="also time an hour after this many days (default days/3; 0: only at --days)",
    )
    parser.add_argument(
        "--rows-per-day",
        type=int,
        default=1_000_000,
        help="telemetry records a day of history (default 1,000,000)",
    )
    parser.add_argument(
        "--hour-rows",
        type=int,
        default=4_000_000,
        help="telemetry records of each new hour (default 4,000,000)",
    )
    parser.add_argument(
        "--others-scale",
        type=float,
        default=1.0,
        help="multiplies every other entity's share of telemetry (default 1)",
    )
    parser.add_argument(
        "--hours",
        type=int,
        default=1,
        help="big hours timed one after another at --days (default 1; a second one shows "
        "what the hour costs when its partition already holds an earlier big hour)",
    )
    parser.add_argument(
        "--dbt-var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a dbt var for every build (repeatable), e.g. asset_state_lookback='10 minutes' "
        "or 'fact_partition_span={observatory: 1 hour}'",
    )
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting over the bench's own (repeatable), e.g. max_wal_size=32GB",
    )
    parser.add_argument("--workers", type=int, default=2, help="connections generating rows")
    parser.add_argument("--slowest", type=int, default=10, help="nodes listed per timed build")
    parser.add_argument("--dbt-project", type=Path, default=None, help="default: dbt_project/")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the cluster and work dir for inspection (otherwise its data is deleted, "
        "in --work-dir too)",
    )
    parser.add_argument(
        "--no-full-rebuild",
        action="store_true",
        help="skip the full rebuild (it needs twice the facts on disk: time it on less history)",
    )
    args = parser.parse_args()
    early = args.early_days if args.early_days is not None else max(1, args.days // 3)
    if early >= args.days:
        early = 0
    if args.days < 1 or args.hours < 1:
        parser.error("--days and --hours must be at least 1")
    dbt_vars = name_values(args.dbt_var, "--dbt-var")
    vars_args = (
        ["--vars", "{" + ", ".join(f"{k}: {v}" for k, v in dbt_vars.items()) + "}"]
        if dbt_vars
        else []
    )

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="hub-bench-transform-"))
    work.mkdir(parents=True, exist_ok=True)
    new_hours = (1 if early else 0) + args.hours
    telemetry = args.days * args.rows_per_day + new_hours * args.hour_rows
    # the full rebuild writes the facts anew before it drops the old ones
    warn_if_short_of_disk(work, telemetry, telemetry if args.no_full_rebuild else 2 * telemetry)
    pg = start_cluster(work, name_values(args.pg_setting, "--pg-setting"))
    dsn = pg.dsn(DATABASE)
    timed: list[Timed] = []
    landed = 0
    try:
        dbt = Dbt(pg, work, args.dbt_project)
        # the data ends an hour ago: every instant, _loaded_at included, is in the past
        end = floor_hour(datetime.now(UTC)) - HOUR
        start = end - args.days * DAY - new_hours * HOUR
        per_hour = args.rows_per_day // 24

        def land(span_start: datetime, span_end: datetime, telemetry: int, what: str) -> LoadedSpan:
            nonlocal landed
            span = load_span(
                dsn,
                span_start,
                span_end,
                telemetry,
                others_scale=args.others_scale,
                workers=args.workers,
                first=span_start == start,
            )
            landed += span.total
            print(
                f"landed {what}: {span.total:,} rows in {span.seconds:.1f} s "
                f"({span.total / max(span.seconds, 1e-9):,.0f} rows/s)",
                flush=True,
            )
            return span

        def build(contender: str, history: str, rows: int, *extra: str) -> DbtRun:
            reset_statements(dsn)
            run = dbt.run("build", *vars_args, *extra)
            print(f"{contender}: {run.seconds:.1f} s", flush=True)
            statements = slowest_statements(dsn, args.slowest)
            timed.append(Timed(contender, history, rows, run, statements))
            return run

        first_days = early or args.days
        land(start, start + first_days * DAY, per_hour, f"{days(first_days)} of history")
        build("initial build", f"{first_days} d", landed)
        print(f"vacuum analyze: {vacuum_analyze(dsn):.1f} s", flush=True)
        moment = start + first_days * DAY
        if early:
            hour = land(moment, moment + HOUR, args.hour_rows, "a new hour")
            build(f"incremental: {ordinal(0)} hour", f"{early} d", hour.total)
            moment += HOUR
            rest = land(moment, moment + (args.days - early) * DAY, per_hour, "the rest")
            build("catch-up (incremental)", f"{args.days} d", rest.total)
            print(f"vacuum analyze: {vacuum_analyze(dsn):.1f} s", flush=True)
            moment += (args.days - early) * DAY
        for count in range(args.hours):
            hour = land(moment, moment + HOUR, args.hour_rows, "a new hour")
            build(f"incremental: {ordinal(count)} hour", f"{args.days} d", hour.total)
            moment += HOUR
        if not args.no_full_rebuild:
            build("full rebuild (--full-refresh)", f"{args.days} d", landed, "--full-refresh")
        with psycopg.connect(dsn) as conn:
            print_sizes(conn, SIZES)
    finally:
        release(pg, work, keep=args.keep, own_work_dir=args.work_dir is None)

    report(timed, args, early)


def ordinal(count: int) -> str:
    """The contender's name of the count-th big hour timed at the same history."""
    return "one new" if count == 0 else f"{count + 1}. big"


def days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def report(timed: list[Timed], args: argparse.Namespace, early: int) -> None:
    print(
        f"\n{args.rows_per_day:,} telemetry records a day of history, new hours of "
        f"{args.hour_rows:,} telemetry records (others x{args.others_scale:g})"
        + (
            f"; PostgreSQL settings over the bench's: {', '.join(args.pg_setting)}"
            if args.pg_setting
            else ""
        )
    )
    print(f"{'contender':<32} {'history':>7} {'rows':>12} {'seconds':>8} {'rows/s':>11}  dbt")
    for t in timed:
        rate = t.rows / t.run.seconds if t.run.seconds else 0.0
        state = "ok" if not t.run.failed else f"{len(t.run.failed)} failed"
        print(
            f"{t.contender:<32} {t.history:>7} {t.rows:>12,} {t.run.seconds:>8.1f} "
            f"{rate:>11,.0f}  {state}"
        )
    hours = [t for t in timed if t.contender.startswith("incremental")]
    at_days = [t for t in hours if t.history == f"{args.days} d"]
    full = next((t for t in timed if t.contender.startswith("full")), None)
    last = at_days[0]
    verdict = "meets" if last.run.seconds <= TARGET_SECONDS else "misses"
    versus = (
        "no full rebuild (--no-full-rebuild)"
        if full is None
        else f"the full rebuild took {full.run.seconds:.1f} s "
        f"({full.run.seconds / last.run.seconds:.1f}x the hour)"
    )
    print(
        f"\none new hour after {days(args.days)}: {last.run.seconds:.1f} s, {verdict} the "
        f"target of <= {TARGET_SECONDS:.0f} s; {versus}"
    )
    if early:
        first = hours[0]
        print(
            f"flat as history grows: {first.run.seconds:.1f} s after {days(early)}, "
            f"{last.run.seconds:.1f} s after {days(args.days)} "
            f"({last.run.seconds / first.run.seconds:.2f}x for "
            f"{args.days / early:.1f}x the history)"
        )
    if len(at_days) > 1:
        later = ", ".join(f"{t.run.seconds:.1f} s" for t in at_days[1:])
        print(f"the big hours after it: {later} (dbt vars: {', '.join(args.dbt_var) or 'none'})")
    for t in timed:
        if t.contender.startswith(("incremental", "full")):
            print_slowest(t.run, f"{t.contender}, {t.history} of history", args.slowest)
            print_statements(t.statements)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
