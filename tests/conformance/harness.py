"""Hypothesis settings of the suite and the hub's environment for a conformance server."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from conformance.contract import PROJECT, SERVICES
from conformance.server import ConformanceServer

EXAMPLES = int(os.environ.get("CONFORMANCE_EXAMPLES", "30"))
# CI replays the same examples every run (a red CI names a hub change, not a draw); a
# developer's run explores new ones, and keeps failing ones (replayed first) in .local/.
IN_CI = bool(os.environ.get("CI"))
DATABASE = (
    None
    if IN_CI
    else DirectoryBasedExampleDatabase(str(PROJECT / ".local" / "hypothesis-conformance"))
)
CONFORMANCE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=DATABASE,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
    print_blob=True,
    derandomize=IN_CI,
)
if os.environ.get("CONFORMANCE_NO_SHRINK"):  # a quicker first failure, unshrunk
    CONFORMANCE = settings(CONFORMANCE, phases=[Phase.explicit, Phase.reuse, Phase.generate])


def connections(server: ConformanceServer) -> dict[str, str]:
    """``AIRFLOW_CONN_HUB_<MODULE>``: each module's base URL and bearer token."""
    return {
        f"AIRFLOW_CONN_HUB_{module.upper()}": json.dumps(
            {"conn_type": "http", "host": server.url(module), "password": server.tokens[module]}
        )
        for module in SERVICES
    }
