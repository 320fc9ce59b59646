"""Dashboard query latency: the marts' hourly aggregates against the fact tables they beat.

    .venv/bin/python bench/query_latency.py                  # 90 days of 1 M telemetry/day
    .venv/bin/python bench/query_latency.py --days 2 --rows-per-day 20000 \\
        --hour-rows 50000                                      # smoke run
    .venv/bin/python bench/query_latency.py --explain        # plus EXPLAIN ANALYZE lines
    .venv/bin/python bench/query_latency.py --phase build --work-dir W   # build, keep it
    .venv/bin/python bench/query_latency.py --phase measure --work-dir W # later, alone

What it measures: on ``--days`` of medium-scale data (``--rows-per-day``
observatory telemetry records a day, plus every other entity at the proportions of
``_history.MIX``) built through dbt, the latency of the dashboard's questions, each asked
``--runs`` times after ``--warmup`` runs on one connection (client wall clock: execute and
fetch), reported as median and p95:

- *last 24 h per model*: requests, error rate, p50/p95 latency and tokens, from
  ``agg_model_latency_hourly`` (the day's p50/p95 as the request-weighted mean of the
  hourly ones: an aggregate cannot give the exact percentile of the day); target < 50 ms;
- *last 30 days spend per account*: USD, tokens and USD per 1k tokens, from
  ``agg_costs_hourly``; target < 200 ms;
- *top violations this week* (last 7 days) by type and severity, from
  ``agg_violations_hourly``; target < 200 ms;

and, side by side, the same questions answered straight from the facts (``fct_requests``
with exact percentiles, ``fct_cost_records``, ``fct_violations``): the baseline the
aggregates beat. Daily aggregates (``agg_costs_daily``, ``agg_violations_daily``) are
asked too when the project builds them. "Now" is the end of the data (an hour ago).

How: a private PostgreSQL cluster (durability off, tuned for bulk work); the history lands
in chunks of ``--chunk-days`` (``_history.load_span``: ``INSERT ... SELECT`` inside
PostgreSQL, window by window with realistic ``_loaded_at``), each chunk merged by an
incremental ``dbt build``, after which the telemetry landing table is emptied (the
observatory's raw retention is 7 days by contract, and 90 days of it would not fit on this
disk next to the facts built from it; the other, smaller entities stay); the last
hour (``--hour-rows`` telemetry records) lands and is built like any hourly run; then
``VACUUM ANALYZE`` (autovacuum's settled state) and the queries. The dbt project is
snapshotted at the start, so edits to ``dbt_project/`` during the run do not change it.

The 90-day build is long. ``--phase build`` stops after it and keeps the cluster
in ``--work-dir`` (with what it built in ``build.json``); ``--phase measure`` later
starts that cluster again and only asks the questions, so the timings can be taken with
nothing else running on the machine; it leaves the cluster running for another measure.
Without ``--keep`` (or a phase), a run deletes its cluster's data, in ``--work-dir`` too.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from _dbt import (
    DATABASE,
    Dbt,
    print_sizes,
    relation,
    release,
    start_cluster,
    warn_if_short_of_disk,
)
from _history import (
    DAY,
    HOUR,
    TELEMETRY,
    floor_hour,
    load_span,
    truncate_landing,
    vacuum_analyze,
)
from analytics_hub.warehouse import landing_table


@dataclass(frozen=True)
class Question:
    question: str
    source: str  # the relation it reads, by model name
    target_ms: float | None
    query: str  # {relation} is the relation; %(now)s the end of the data


QUESTIONS: tuple[Question, ...] = (
    Question(
        "last 24 h per model",
        "agg_model_latency_hourly",
        50.0,
        """
        select
            model_id,
            sum(requests) as requests,
            round(sum(errors)::numeric / nullif(sum(requests), 0), 6) as error_rate,
            sum(latency_p50_ms * requests) / nullif(sum(requests), 0) as latency_p50_ms,
            sum(latency_p95_ms * requests) / nullif(sum(requests), 0) as latency_p95_ms,
            sum(input_tokens) as input_tokens,
            sum(output_tokens) as output_tokens
        from {relation}
        where bucket >= %(now)s - interval '24 hours' and bucket < %(now)s
        group by model_id
        order by requests desc
        """,
    ),
    Question(
        "last 24 h per model",
        "fct_requests",
        None,
        """
        select
            model_id,
            count(*) as requests,
            round(count(*) filter (where status = 'error')::numeric / count(*), 6)
                as error_rate,
            percentile_cont(0.5) within group (order by latency_ms) as latency_p50_ms,
            percentile_cont(0.95) within group (order by latency_ms) as latency_p95_ms,
            sum(input_tokens) as input_tokens,
            sum(output_tokens) as output_tokens
        from {relation}
        where event_time >= %(now)s - interval '24 hours' and event_time < %(now)s
        group by model_id
        order by requests desc
        """,
    ),
    Question(
        "last 30 days spend per account",
        "agg_costs_hourly",
        200.0,
        """
        select
            account_id,
            sum(cost_usd) as cost_usd,
            sum(input_tokens) + sum(output_tokens) as tokens,
            round(sum(cost_usd) * 1000 / nullif(sum(input_tokens + output_tokens), 0), 6)
                as cost_usd_per_1k_tokens
        from {relation}
        where bucket >= %(now)s - interval '30 days' and bucket < %(now)s
        group by account_id
        order by cost_usd desc
        """,
    ),
    Question(
        "last 30 days spend per account",
        "agg_costs_daily",
        200.0,
        """
        select account_id, sum(cost_usd) as cost_usd
        from {relation}
        where bucket >= %(now)s - interval '30 days' and bucket < %(now)s
        group by account_id
        order by cost_usd desc
        """,
    ),
    Question(
        "last 30 days spend per account",
        "fct_cost_records",
        None,
        """
        select
            account_id,
            sum(cost_usd) as cost_usd,
            sum(input_tokens) + sum(output_tokens) as tokens,
            round(sum(cost_usd) * 1000 / nullif(sum(input_tokens + output_tokens), 0), 6)
                as cost_usd_per_1k_tokens
        from {relation}
        where usage_start >= %(now)s - interval '30 days' and usage_start < %(now)s
        group by account_id
        order by cost_usd desc
        """,
    ),
    Question(
        "top violations, last 7 days",
        "agg_violations_hourly",
        200.0,
        """
        select violation_type, violation_severity, sum(violations) as violations
        from {relation}
        where bucket >= %(now)s - interval '7 days' and bucket < %(now)s
        group by violation_type, violation_severity
        order by violations desc
        limit 10
        """,
    ),
    Question(
        "top violations, last 7 days",
        "agg_violations_daily",
        200.0,
        """
        select violation_type, violation_severity, sum(violations) as violations
        from {relation}
        where bucket >= %(now)s - interval '7 days' and bucket < %(now)s
        group by violation_type, violation_severity
        order by violations desc
        limit 10
        """,
    ),
    Question(
        "top violations, last 7 days",
        "fct_violations",
        None,
        """
        select violation_type, violation_severity, count(*) as violations
        from {relation}
        where event_time >= %(now)s - interval '7 days' and event_time < %(now)s
        group by violation_type, violation_severity
        order by violations desc
        limit 10
        """,
    ),
)


@dataclass(frozen=True)
class Measured:
    question: Question
    relation: str | None
    rows: int = 0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    error: str = ""
    explain: tuple[str, ...] = ()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="days of data (default 90)")
    parser.add_argument(
        "--rows-per-day",
        type=int,
        default=1_000_000,
        help="telemetry records a day (default 1,000,000)",
    )
    parser.add_argument(
        "--hour-rows",
        type=int,
        default=None,
        help="telemetry records of the last hour, built incrementally (default a day's / 24)",
    )
    parser.add_argument("--others-scale", type=float, default=1.0)
    parser.add_argument("--chunk-days", type=int, default=10, help="days landed per dbt build")
    parser.add_argument(
        "--keep-landing",
        action="store_true",
        help="keep all telemetry in its landing table (needs the disk for it)",
    )
    parser.add_argument("--runs", type=int, default=20, help="timed runs per query")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per query first")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE lines")
    parser.add_argument("--workers", type=int, default=2, help="connections generating rows")
    parser.add_argument("--dbt-project", type=Path, default=None, help="default: dbt_project/")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument(
        "--keep", action="store_true", help="keep the cluster and work dir for inspection"
    )
    parser.add_argument(
        "--phase",
        choices=("all", "build", "measure"),
        default="all",
        help="build: build the history and keep it in --work-dir; measure: only ask the "
        "questions of a kept build (default all)",
    )
    args = parser.parse_args()
    if args.days < 1 or args.chunk_days < 1:
        parser.error("--days and --chunk-days must be at least 1")
    if args.phase != "all" and args.work_dir is None:
        parser.error(f"--phase {args.phase} needs --work-dir")
    hour_rows = args.hour_rows if args.hour_rows is not None else args.rows_per_day // 24

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="hub-bench-queries-"))
    work.mkdir(parents=True, exist_ok=True)
    built_file = work / "build.json"
    if args.phase == "measure":
        if not built_file.exists():
            parser.error(f"{work} holds no finished build ({built_file.name} is missing)")
        built = json.loads(built_file.read_text())
        args.days, args.rows_per_day, args.others_scale = (
            built["days"],
            built["rows_per_day"],
            built["others_scale"],
        )
    else:
        telemetry = args.days * args.rows_per_day + hour_rows
        in_landing = telemetry if args.keep_landing else args.chunk_days * args.rows_per_day
        warn_if_short_of_disk(work, in_landing, telemetry)
    keep = args.keep or args.phase != "all"  # measure may be run again on the build
    pg = start_cluster(work)
    dsn = pg.dsn(DATABASE)
    measured: list[Measured] = []
    try:
        if args.phase == "measure":
            end = datetime.fromisoformat(built["end"])
            print(f"measuring the build kept in {work} (data ends {end:%Y-%m-%d %H:%M} UTC)")
        else:
            end = build(
                dbt=Dbt(pg, work, args.dbt_project), dsn=dsn, hour_rows=hour_rows, args=args
            )
            built_file.write_text(
                json.dumps(
                    {
                        "end": end.isoformat(),
                        "days": args.days,
                        "rows_per_day": args.rows_per_day,
                        "others_scale": args.others_scale,
                    }
                )
            )
        if args.phase != "build":
            with psycopg.connect(dsn, autocommit=True) as conn:
                print_sizes(conn, [q.source for q in QUESTIONS])
                measured = [
                    measure(conn, q, end, args.runs, args.warmup, args.explain) for q in QUESTIONS
                ]
    finally:
        release(pg, work, keep=keep, own_work_dir=args.work_dir is None)
    if measured:
        report(measured, args)


def build(dbt: Dbt, dsn: str, hour_rows: int, args: argparse.Namespace) -> datetime:
    """Land and build ``args.days`` of history and then one hour; return the data's end."""
    end = floor_hour(datetime.now(UTC)) - HOUR
    start = end - args.days * DAY
    moment = start
    while moment < end - HOUR:
        chunk_end = min(moment + args.chunk_days * DAY, end - HOUR)
        span = load_span(
            dsn,
            moment,
            chunk_end,
            args.rows_per_day // 24,
            others_scale=args.others_scale,
            workers=args.workers,
            first=moment == start,
        )
        run = dbt.run("build")
        print(
            f"{moment:%Y-%m-%d %H:%M} .. {chunk_end:%Y-%m-%d %H:%M}: {span.total:,} rows "
            f"landed in {span.seconds:.0f} s, built in {run.seconds:.0f} s",
            flush=True,
        )
        if not args.keep_landing:
            truncate_landing(dsn, [landing_table(*TELEMETRY)])
        moment = chunk_end
    span = load_span(
        dsn, end - HOUR, end, hour_rows, others_scale=args.others_scale, workers=args.workers
    )
    run = dbt.run("build")
    print(
        f"last hour: {span.total:,} rows landed in {span.seconds:.0f} s, "
        f"built incrementally in {run.seconds:.1f} s",
        flush=True,
    )
    print(f"vacuum analyze: {vacuum_analyze(dsn):.0f} s", flush=True)
    return end


def measure(
    conn: psycopg.Connection[Any],
    question: Question,
    now: datetime,
    runs: int,
    warmup: int,
    explain: bool,
) -> Measured:
    found = relation(conn, question.source)
    if found is None:
        return Measured(question, None, error="not built")
    statement = sql.SQL(question.query).format(relation=sql.SQL(found))
    params = {"now": now}
    timings: list[float] = []
    rows = 0
    try:
        for attempt in range(warmup + runs):
            started = time.perf_counter()
            rows = len(conn.execute(statement, params).fetchall())
            if attempt >= warmup:
                timings.append((time.perf_counter() - started) * 1000)
        lines: tuple[str, ...] = ()
        if explain:
            plan = conn.execute(
                sql.SQL("explain (analyze, buffers) {}").format(statement), params
            ).fetchall()
            lines = summarize_plan([str(line[0]) for line in plan])
    except psycopg.Error as exc:
        return Measured(question, found, error=str(exc).splitlines()[0])
    ordered = sorted(timings)
    return Measured(
        question,
        found,
        rows=rows,
        p50_ms=statistics.median(ordered),
        p95_ms=ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)],
        explain=lines,
    )


def summarize_plan(plan: list[str]) -> tuple[str, ...]:
    """The top node, aggregations and scans (with their rows), planning and execution times."""
    scans = [line.strip() for line in plan[1:] if "Scan" in line or "Aggregate" in line][:5]
    timing = [line.strip() for line in plan if line.startswith(("Planning Time", "Execution"))]
    return (plan[0].strip(), *scans, *timing)


def report(measured: list[Measured], args: argparse.Namespace) -> None:
    print(
        f"\n{args.days} days of {args.rows_per_day:,} telemetry records a day "
        f"(others x{args.others_scale:g}); {args.runs} runs per query after {args.warmup} "
        "warm-up runs"
    )
    print(
        f"{'question':<32} {'source':<26} {'rows':>5} {'p50 ms':>9} {'p95 ms':>9} "
        f"{'target':>8}  verdict"
    )
    for m in measured:
        q = m.question
        target = f"< {q.target_ms:.0f}" if q.target_ms else "baseline"
        if m.error:
            print(f"{q.question:<32} {q.source:<26} {'':>5} {'':>9} {'':>9} {target:>8}  {m.error}")
            continue
        verdict = ""
        if q.target_ms is not None:
            verdict = "meets" if m.p95_ms < q.target_ms else "misses"
        print(
            f"{q.question:<32} {q.source:<26} {m.rows:>5} {m.p50_ms:>9.1f} {m.p95_ms:>9.1f} "
            f"{target:>8}  {verdict}"
        )
    print()
    for question in dict.fromkeys(m.question.question for m in measured):
        group = [m for m in measured if m.question.question == question and not m.error]
        base = next((m for m in group if m.question.target_ms is None), None)
        for m in group:
            if base is not None and m is not base and m.p50_ms > 0:
                print(
                    f"{question}: {m.question.source} answers {base.p50_ms / m.p50_ms:,.1f}x "
                    f"faster than {base.question.source} (medians)"
                )
    if args.explain:
        for m in measured:
            if m.explain:
                print(f"\nEXPLAIN ANALYZE {m.question.question} from {m.relation}:")
                for line in m.explain:
                    print(f"  {line}")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
