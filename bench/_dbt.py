"""A tuned private cluster and ``dbt`` runs for the warehouse benchmarks (not a benchmark).

Shared by ``transform_incremental.py`` and ``query_latency.py``. dbt runs with the dev
harness's runner (``hub_dev.dbt``) on a copy of the project in the run's work dir, so that
edits made to ``dbt_project/`` while a benchmark runs cannot change the models between its
builds, and dbt's target and logs stay out of the checkout.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from analytics_hub.settings import load_settings
from hub_dev.dbt import DbtRunner
from hub_dev.postgres import PrivatePostgres, find_bindir

DATABASE = "warehouse_bench"
# On top of PrivatePostgres's durability-off defaults: room for bulk loads, index builds
# and the big sorts of percentile aggregates, sized for this 2-core / 24 GiB machine that
# others share. JIT is off: it costs more than it saves on queries of well under a second.
# WAL compression is off (PostgreSQL's default): an index build WAL-logs every page it
# writes, whole, and pglz compressing them is a sizeable share of a big fact partition's
# index builds (bench/README.md; lz4 costs about nothing; off is valid everywhere).
BULK_SETTINGS: dict[str, str] = {
    "shared_buffers": "2GB",
    "effective_cache_size": "12GB",
    "work_mem": "256MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "min_wal_size": "2GB",
    "checkpoint_timeout": "30min",
    "wal_compression": "off",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "64",
    "max_parallel_workers_per_gather": "2",
    "jit": "off",
    "autovacuum_vacuum_cost_limit": "2000",
}


# pg_stat_statements, where the server has it (PostgreSQL's contrib): the time of every
# statement a timed build sends, each statement of dbt's multi-statement strings apart
# (`print_statements`).
STATEMENT_SETTINGS: dict[str, str] = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.track_utility": "on",
}


def start_cluster(work: Path, overrides: dict[str, str] | None = None) -> PrivatePostgres:
    """A private cluster in ``work/pg`` with ``BULK_SETTINGS`` (``STATEMENT_SETTINGS`` where
    the server has pg_stat_statements, and ``overrides``) and the bench database."""
    work.chmod(0o755)  # PostgreSQL runs as an unprivileged account when we are root
    bindir = find_bindir()
    counted = STATEMENT_SETTINGS if _has_pg_stat_statements(bindir) else {}
    settings = BULK_SETTINGS | counted | (overrides or {})
    pg = PrivatePostgres(work / "pg", bindir=bindir, settings=settings).start()
    pg.create_database(DATABASE)
    if counted:
        with psycopg.connect(pg.dsn(DATABASE), autocommit=True) as conn:
            conn.execute("create extension if not exists pg_stat_statements")
    return pg


def _has_pg_stat_statements(bindir: Path) -> bool:
    try:
        libdir = subprocess.run(
            [str(bindir / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return (Path(libdir) / "pg_stat_statements.so").is_file()


@dataclass(frozen=True)
class Statement:
    seconds: float
    calls: int
    text: str  # `_compact`


def reset_statements(dsn: str) -> None:
    """Forget the statements counted so far (no-op without pg_stat_statements)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if _counting(conn):
            conn.execute("select pg_stat_statements_reset()")


def slowest_statements(dsn: str, count: int) -> list[Statement]:
    """The ``count`` statements of the bench database that took longest since the last
    ``reset_statements`` (total over their calls); [] without pg_stat_statements."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not _counting(conn):
            return []
        rows = conn.execute(
            """
            select total_exec_time / 1000, calls, query
            from pg_stat_statements
            where dbid = (select oid from pg_database where datname = current_database())
              and position('pg_stat_statements' in query) = 0
            order by total_exec_time desc
            limit %s
            """,
            (count,),
        ).fetchall()
    return [Statement(float(s), int(c), _compact(q)) for s, c, q in rows]


def _counting(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("select 1 from pg_extension where extname = 'pg_stat_statements'").fetchone()
    return row is not None


def _compact(query: str) -> str:
    """One line: comments dropped, whitespace collapsed, the bench database's name left out."""
    without_comments = re.sub(r"/\*.*?\*/|--[^\n]*", " ", query, flags=re.S)
    return " ".join(without_comments.split()).replace(f'"{DATABASE}".', "")


def print_statements(statements: list[Statement], width: int = 120) -> None:
    """The slowest statements of a timed build, as ``slowest_statements`` found them."""
    if not statements:
        return
    print(
        f"  {'statement (pg_stat_statements; slowest first)':<{width}} {'calls':>5} {'seconds':>8}"
    )
    for statement in statements:
        text = (
            statement.text if len(statement.text) <= width else statement.text[: width - 3] + "..."
        )
        print(f"  {text:<{width}} {statement.calls:>5} {statement.seconds:>8.2f}")


# Bytes on disk per telemetry record, indexes included, in its landing table and as a
# row of fct_requests, as measured on generated history (bench/README.md); the other
# entities add a little.
LANDING_BYTES_PER_RECORD = 470
FACT_BYTES_PER_RECORD = 510


def warn_if_short_of_disk(work: Path, landing_records: int, fact_records: int) -> None:
    """Say so up front when the run's estimated footprint exceeds the free disk."""
    needed = 1.1 * (
        landing_records * LANDING_BYTES_PER_RECORD + fact_records * FACT_BYTES_PER_RECORD
    )
    free = shutil.disk_usage(work).free
    print(f"estimated peak on disk: {needed / 1e9:.0f} GB of {free / 1e9:.0f} GB free in {work}")
    if needed > 0.9 * free:
        print("  ! that may not fit: fewer --days or --rows-per-day, or another --work-dir")


def name_values(items: list[str], option: str) -> dict[str, str]:
    """Repeated ``--option NAME=VALUE`` arguments as a dict."""
    found = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"{option} takes NAME=VALUE, not {item!r}")
        found[name.strip()] = value.strip()
    return found


def release(pg: PrivatePostgres, work: Path, *, keep: bool, own_work_dir: bool) -> None:
    """End a run: keep the cluster (and say how to reach it), or stop it and delete its data,
    in a given ``--work-dir`` too (a default-size cluster takes much of the disk); a work
    dir the run made itself goes whole."""
    if keep:
        print(keep_message(pg, work))
        return
    pg.stop()
    shutil.rmtree(pg.data_dir, ignore_errors=True)
    if own_work_dir:
        shutil.rmtree(work, ignore_errors=True)


def keep_message(pg: PrivatePostgres, work: Path) -> str:
    return (
        f"cluster kept: psql {pg.dsn(DATABASE)}  (work dir {work})\n"
        'stop it with: .venv/bin/python -c "from hub_dev.postgres import '
        f"PrivatePostgres; PrivatePostgres('{pg.data_dir}').stop()\""
    )


@dataclass(frozen=True)
class Node:
    """One node of a dbt run, from ``run_results.json``."""

    unique_id: str
    resource_type: str
    status: str
    seconds: float
    rows_affected: int | None

    @property
    def name(self) -> str:
        return self.unique_id.split(".", 2)[-1]


@dataclass(frozen=True)
class DbtRun:
    args: tuple[str, ...]
    returncode: int
    seconds: float  # wall clock of the dbt process, start-up and parsing included
    elapsed: float  # dbt's own elapsed_time: the graph run only
    nodes: list[Node]

    @property
    def failed(self) -> list[Node]:
        return [n for n in self.nodes if n.status in ("error", "fail", "skipped", "runtime error")]

    def seconds_of(self, resource_type: str) -> float:
        return sum(n.seconds for n in self.nodes if n.resource_type == resource_type)


class Dbt:
    """``dbt`` from ``.venv-dbt`` on a snapshot of the project, against the bench database."""

    def __init__(self, pg: PrivatePostgres, work: Path, project: Path | None = None) -> None:
        source = project or load_settings().dbt_project_dir
        self.project = work / "dbt_project"
        shutil.rmtree(self.project, ignore_errors=True)
        shutil.copytree(
            source, self.project, ignore=shutil.ignore_patterns("target", "logs", "__pycache__")
        )
        self.log = work / "dbt.log"
        self.runner = DbtRunner(pg.dsn(DATABASE), project_dir=self.project)

    def run(self, *args: str) -> DbtRun:
        """Run ``dbt <args>``; a failed node is reported in the result, not raised."""
        target = self.project / "target"
        (target / "run_results.json").unlink(missing_ok=True)
        started = time.perf_counter()
        with self.log.open("a") as log:
            log.write(f"\n=== dbt {' '.join(args)}\n")
            log.flush()
            result = self.runner.run(*args, check=False, output=log)
        seconds = time.perf_counter() - started
        results_file = target / "run_results.json"
        if not results_file.is_file():
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"dbt {' '.join(args)} produced no run results:\n{tail}")
        results: dict[str, Any] = json.loads(results_file.read_text())
        nodes = [
            Node(
                unique_id=r["unique_id"],
                resource_type=r["unique_id"].split(".", 1)[0],
                status=str(r["status"]),
                seconds=float(r.get("execution_time") or 0.0),
                rows_affected=(r.get("adapter_response") or {}).get("rows_affected"),
            )
            for r in results.get("results", [])
        ]
        run = DbtRun(
            args=args,
            returncode=result.returncode,
            seconds=seconds,
            elapsed=float(results.get("elapsed_time") or 0.0),
            nodes=nodes,
        )
        for node in run.failed:
            print(f"  ! dbt {' '.join(args)}: {node.resource_type} {node.name} {node.status}")
        return run


def print_slowest(run: DbtRun, title: str, count: int = 10) -> None:
    """The ``count`` slowest nodes of a run, with how its time splits over node types."""
    by_type = {kind: run.seconds_of(kind) for kind in sorted({n.resource_type for n in run.nodes})}
    split = ", ".join(f"{kind}s {seconds:.1f} s" for kind, seconds in by_type.items())
    print(
        f"\n{title}: dbt {' '.join(run.args)}: {run.seconds:.1f} s wall, "
        f"{run.elapsed:.1f} s in dbt's graph ({split})"
    )
    print(f"  {'node':<62} {'type':<6} {'status':<8} {'seconds':>8} {'rows':>11}")
    for node in sorted(run.nodes, key=lambda n: n.seconds, reverse=True)[:count]:
        rows = "" if node.rows_affected is None else f"{node.rows_affected:,}"
        print(
            f"  {node.name[:62]:<62} {node.resource_type[:6]:<6} {node.status[:8]:<8} "
            f"{node.seconds:>8.2f} {rows:>11}"
        )


def relation(conn: psycopg.Connection[Any], name: str) -> str | None:
    """``schema.name`` of a built relation (table, view, partitioned table, matview)."""
    row = conn.execute(
        "select format('%%I.%%I', n.nspname, c.relname) from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where c.relname = %s and c.relkind in ('r', 'p', 'v', 'm') "
        "and n.nspname not in ('pg_catalog', 'information_schema') "
        "order by n.nspname like '%%timescaledb%%', n.nspname limit 1",
        (name,),
    ).fetchone()
    return str(row[0]) if row else None


def print_sizes(conn: psycopg.Connection[Any], names: Iterable[str]) -> None:
    """Rows and size on disk (partitions included) of relations, by model or table name."""
    print(f"\n{'relation':<44} {'rows':>12} {'size':>10}")
    for name in dict.fromkeys(names):
        found = relation(conn, name)
        if found is None:
            print(f"{name:<44} {'(not built)':>12}")
            continue
        count = conn.execute(sql.SQL("select count(*) from {}").format(sql.SQL(found))).fetchone()
        size = conn.execute(
            "select pg_size_pretty(coalesce(sum(pg_total_relation_size(c.oid)), 0)) "
            "from pg_class c where c.oid = %s::regclass "
            "or c.oid in (select inhrelid from pg_inherits where inhparent = %s::regclass)",
            (found, found),
        ).fetchone()
        print(f"{found:<44} {count[0] if count else 0:>12,} {size[0] if size else '':>10}")
