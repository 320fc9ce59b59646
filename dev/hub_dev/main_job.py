"""The main job, on an embedded default: ``make run`` (``python -m hub_dev.main_job``).

It starts what it needs (the private PostgreSQL cluster for Airflow's metadata and the
warehouse, the module simulators), then has Airflow run, for one window: every
``ingest_<module>`` DAG, ``load_warehouse`` for each module, and ``transform`` (dbt).
It prints what landed in the lake, checked against the simulators' ground truth, and
headline numbers from the marts. Everything it starts, it stops; the lake stays in
``.local/lake`` and the warehouse in the ``warehouse`` database of ``.local/pg``.

A module whose ``HUB_<MODULE>_URL`` and ``HUB_<MODULE>_TOKEN`` are set (in the
environment or ``.env``) is pulled from that host instead: no simulator serves it and
its counts are not checked (it has no ground truth); the others stay simulated.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from analytics_hub.lake import Lake
from analytics_hub.settings import (
    ConfigurationError,
    ModuleHost,
    load_module_hosts,
    load_settings,
    module_host_variable,
    quality_url,
)
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window
from hub_dev.airflow_env import (
    dags_test,
    dags_test_many,
    failure_excerpt,
    migrate_once,
    serialize_dags,
)
from hub_dev.local_hub import (
    WAREHOUSE_DATABASE,
    local_environ,
    local_stack_env,
    simulators_for,
)
from hub_dev.postgres import PrivatePostgres

if TYPE_CHECKING:
    from simulators import SimulatorConfig

# (module, truth name of an endpoint) -> the simulators' ground truth of the window
TruthOf = Callable[[str, str], dict[str, Any]]


def last_full_hour() -> Window:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return Window(end - timedelta(hours=1), end)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hub_dev.main_job", description=__doc__)
    parser.add_argument("--start", help="window start, ISO-8601 UTC (default: last full hour)")
    parser.add_argument("--end", help="window end, exclusive")
    parser.add_argument("--seed", type=int, default=42, help="simulator seed")
    parser.add_argument("--chaos", type=float, default=0.05, help="simulator chaos, 0..1")
    return parser.parse_args(argv)


def simulator_config(seed: int, chaos: float) -> SimulatorConfig:
    from simulators import SimulatorConfig

    return SimulatorConfig(seed=seed, chaos=chaos, stall_seconds=0.5)


def run(
    window: Window,
    seed: int,
    chaos: float,
    hosts: Mapping[str, ModuleHost] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """The whole job; ``hosts`` (see ``load_module_hosts``) are pulled instead of simulated,
    ``environ`` (default ``local_environ()``) is the base of Airflow's."""
    hosts = hosts or {}
    environ = local_environ() if environ is None else environ
    config = simulator_config(seed, chaos)
    simulated = [m for m in MODULES if m not in hosts]
    conf = {"window_start": window.query()["from"], "window_end": window.query()["to"]}
    with PrivatePostgres() as pg, simulators_for(simulated, config) as simulator_url:
        print(f"postgres   {pg.dsn()} (Airflow metadata)")
        if simulator_url is not None:
            print(f"simulators {simulator_url} (seed {seed}, chaos {chaos})")
        else:
            print("simulators not started: every module is a real host")
        for module, host in hosts.items():
            print(f"real host  {module}: {host.url} ({module_host_variable(module, 'url')})")
        env = local_stack_env(pg, simulator_url, hosts, environ)
        took = migrate_once(pg, env)
        print("airflow db up to date" if took is None else f"airflow db migrated in {took:.0f} s")
        serialize_dags(env)
        print(f"window     {window}\n")

        if not ingest_and_check(env, window, MODULES, config, real_hosts=hosts):
            return 1

        started = time.monotonic()
        loaded = dags_test(env, "load_warehouse", conf)
        if loaded.returncode != 0:
            print(f"load_warehouse FAILED:\n{failure_excerpt(loaded)}")
            return 1
        transformed = dags_test(env, "transform")
        if transformed.returncode != 0:
            print(f"transform FAILED:\n{failure_excerpt(transformed)}")
            return 1
        print(
            f"Airflow loaded the window into the warehouse and ran dbt in "
            f"{time.monotonic() - started:.0f} s\n"
        )
        print("headline numbers, over everything in the warehouse so far:\n")
        _headlines(pg.dsn(WAREHOUSE_DATABASE))
        return 0


def ingest_and_check(
    env: Mapping[str, str],
    window: Window,
    modules: Iterable[str],
    config: SimulatorConfig,
    real_hosts: Collection[str] = (),
) -> bool:
    """Run ``ingest_<module>`` for each module, in two processes, then print what landed.

    The counts of simulated modules are checked against the ground truth of the simulators'
    ``config``; those of ``real_hosts`` are not (a real host has none), and the report says
    so. True when every DAG succeeded and nothing mismatched.
    """
    from simulators import compute_truth

    conf = {"window_start": window.query()["from"], "window_end": window.query()["to"]}
    started = time.monotonic()
    modules = list(modules)
    results = dags_test_many(env, [(f"ingest_{m}", conf) for m in modules], processes=2)
    runs = dict(zip(modules, results, strict=True))
    failed = [m for m, result in runs.items() if result.returncode != 0]
    for module in failed:
        print(f"ingest_{module} FAILED:\n{failure_excerpt(runs[module])}")
    print(f"Airflow ran {len(runs)} ingest DAGs in {time.monotonic() - started:.0f} s\n")

    lake = Lake.from_settings(load_settings(lake_url=env["HUB_LAKE_URL"]))
    within = [
        m
        for m in lake.manifests()
        if conf["window_start"] <= m["window_start"] < m["window_end"] <= conf["window_end"]
        and m["module"] in runs
    ]
    mismatches = report_manifests(
        per_entity(within),
        lambda m, e: compute_truth(config, m, e, window.start, window.end),
        real_hosts,
    )
    print(f"\nlake: {lake.url}")
    return not (failed or mismatches)


COUNTS = ("pulled", "landed", "dead_lettered", "deduplicated")


def per_entity(manifests: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The counts of each entity summed over its windows: a module on a 15-minute schedule
    lands an hour as four."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for m in manifests:
        total = totals.setdefault(
            (m["module"], m["entity"]),
            {"module": m["module"], "entity": m["entity"]} | dict.fromkeys(COUNTS, 0),
        )
        for count in COUNTS:
            total[count] += m[count]
    return list(totals.values())


HEADLINES = {
    "spend by account (USD)": """
        select account_id, round(sum(cost_usd), 2) as usd, sum(cost_records) as records
        from analytics.agg_costs_hourly group by 1 order by 2 desc limit 5""",
    "p95 latency by model (ms, busiest hours' worst)": """
        select model_id, round(max(latency_p95_ms)::numeric, 1) as p95_ms,
               sum(requests) as requests, round(sum(errors)::numeric / sum(requests), 4)
               as error_rate
        from analytics.agg_model_latency_hourly group by 1 order by 3 desc limit 5""",
    "compliance rate": """
        select round(sum(compliant)::numeric / nullif(sum(evaluations), 0), 4) as rate,
               sum(evaluations) as evaluations,
               (select sum(violations) from analytics.agg_violations_hourly) as violations
        from analytics.agg_compliance_hourly""",
    "threats by level": """
        select coalesce(threat_level, '(no level)') as threat_level,
               sum(security_events) as events
        from analytics.agg_threats_hourly group by 1 order by 2 desc""",
    "compliance report, newest hours (policy engine feed)": """
        select hour, evaluations, violations, compliance_rate, compliance_rate_trend
        from analytics.rpt_policy_compliance_hourly order by hour desc limit 3""",
    "usage report (costops feed)": """
        select case when account_id is null then 'unattributed' else 'to accounts' end
               as usage, sum(requests) as requests,
               sum(input_tokens) as input_tokens, sum(output_tokens) as output_tokens
        from analytics.rpt_costops_usage_hourly group by 1 order by 1 desc""",
}


def _headlines(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        for title, query in HEADLINES.items():
            cursor = conn.execute(query)
            columns = [c.name for c in cursor.description or ()]
            print(f"{title}:")
            print("  " + "  ".join(f"{c:>24}" for c in columns))
            for row in cursor.fetchall():
                print("  " + "  ".join(f"{v!s:>24}" for v in row))
            print()


def report_manifests(
    manifests: list[dict[str, Any]], truth_of: TruthOf, real_hosts: Collection[str] = ()
) -> int:
    """Print each manifest's counts, checked against ``truth_of`` unless its module is one of
    ``real_hosts``; returns the number of mismatches."""
    header = f"{'module':<12}{'entity':<16}{'pulled':>8}{'landed':>8}{'dead':>6}{'dup':>5}  truth"
    print(header)
    print("-" * len(header))
    mismatches = 0
    for m in sorted(manifests, key=lambda m: (m["module"], m["entity"])):
        entity = MODULES[m["module"]].entity(m["entity"])
        check = "-"
        if m["module"] in real_hosts:
            check = "skipped (real host)"
        elif entity.name != "versions":  # the simulators keep no truth for asset versions
            truth = truth_of(m["module"], entity.path.rstrip("/").rsplit("/", 1)[1])
            expected = (truth["pulled"], truth["valid"], len(truth["malformed"]))
            ok = (m["pulled"], m["landed"], m["dead_lettered"]) == expected
            mismatches += not ok
            check = "ok" if ok else f"MISMATCH, expected {expected}"
        print(
            f"{m['module']:<12}{m['entity']:<16}{m['pulled']:>8}{m['landed']:>8}"
            f"{m['dead_lettered']:>6}{m['deduplicated']:>5}  {check}"
        )
    real = [module for module in MODULES if module in real_hosts]
    if real:
        print(f"ground truth: skipped, modules are real hosts: {', '.join(real)}")
    return mismatches


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if bool(args.start) != bool(args.end):
        print("give both --start and --end, or neither", file=sys.stderr)
        return 2
    window = Window.parse(args.start, args.end) if args.start else last_full_hour()
    environ = local_environ()
    try:
        hosts = load_module_hosts(environ)
    except ConfigurationError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    code = run(window, args.seed, args.chaos, hosts, environ)
    _validation_report(started)
    return code


def _validation_report(since: datetime) -> None:
    """The gates' decisions in this run, per module, from the validation history."""
    from analytics_hub.quality.summary import STATUSES, validation_summary
    from hub_dev.local_hub import local_dir

    settings = load_settings(lake_url=str(local_dir() / "lake"))
    url = quality_url(settings)
    header = f"{'module':<12}{'gate':<6}" + "".join(f"{s:>13}" for s in STATUSES)
    print(f"\nvalidation summary (runs of the lake and mart gates):\n{header}\n{'-' * len(header)}")
    for summary in validation_summary(url, settings, since):
        counts = "".join(f"{summary.runs[s]:>13}" for s in STATUSES)
        print(f"{summary.module:<12}{summary.gate:<6}{counts}")
        for failure, runs in sorted(summary.failed.items()):
            print(f"{'':<18}{failure} x{runs}")
    print(f"Data Docs: {url}/docs/index.html")


if __name__ == "__main__":
    sys.exit(main())
