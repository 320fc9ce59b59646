"""Every kind of difference between the hub and the contract, over many generated windows.

The property tests stop at an example's first failing assertion and shrink it; this
runner instead lands ``--examples`` windows per entity without asserting, and prints each
kind of finding (its signature) with how often it came up and one sample. For reports:

    cd tests && ../.venv/bin/python -m conformance.diagnose --examples 60 [--entity costops.budgets]
"""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conformance.checks import Findings, environment, land_and_check
from conformance.contract import BY_ID, ENTITIES
from conformance.harness import connections
from conformance.server import ConformanceServer
from conformance.worlds import window_worlds
from hub_dev.airflow_env import warehouse_connection_env
from hub_dev.postgres import PrivatePostgres


def diagnose(entity_ids: list[str], examples: int) -> dict[str, tuple[int, str]]:
    key = "diagnose-" + secrets.token_hex(8)
    seen: Counter[str] = Counter()
    samples: dict[str, str] = {}
    runs: Counter[str] = Counter()
    # the land task holds each window's lease on the warehouse: a private cluster of its own
    root = Path(tempfile.mkdtemp(prefix="conformance-pg-"))
    root.chmod(0o755)  # the cluster's unprivileged account enters it when we are root
    try:
        with (
            PrivatePostgres(root / "data") as pg,
            ConformanceServer() as server,
            environment(
                HUB_PSEUDONYM_KEY=key,
                HUB_HTTP_MAX_BACKOFF_SECONDS="1",
                **connections(server),
                **warehouse_connection_env(pg, "conformance_leases"),
            ),
        ):
            for ent_id in entity_ids:
                started = time.monotonic()
                run = _runner(server, ent_id, key, examples, runs, seen, samples)
                run()
                print(
                    f"{ent_id}: {runs[ent_id]} windows in {time.monotonic() - started:.1f} s",
                    file=sys.stderr,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {s: (n, samples[s]) for s, n in sorted(seen.items())}


def _runner(
    server: ConformanceServer,
    ent_id: str,
    key: str,
    examples: int,
    runs: Counter[str],
    seen: Counter[str],
    samples: dict[str, str],
) -> Any:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: Any) -> None:
        world = data.draw(window_worlds(ent_id))
        with server.serving(world):
            found: Findings = land_and_check(BY_ID[ent_id], world, key)
        runs[ent_id] += 1
        for signature in dict(found.signatures):
            seen[signature] += 1
        for signature, sample in found.signatures:
            samples.setdefault(signature, sample)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=60)
    parser.add_argument("--entity", action="append", choices=[e.id for e in ENTITIES])
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the hub's retry warnings on the server's 429/503
    found = diagnose(args.entity or [e.id for e in ENTITIES], args.examples)
    for signature, (count, sample) in found.items():
        print(f"[{count:>3}x] {signature}\n        e.g. {sample[:900]}\n")
    print(f"{len(found)} kinds of findings")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
