"""What the gates decided, per module: read back from the validation history.

The history (``store``: ``<quality>/validations/module=/entity=/date=/hour=/*.parquet``)
holds one row per expectation per run; every row of a run carries the run's status. Read
with pyarrow alone, so a report does not pay for importing Great Expectations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from analytics_hub.lake import Lake
from analytics_hub.settings import HubSettings

STATUSES = ("passed", "warned", "quarantined", "blocked")


@dataclass
class ModuleSummary:
    module: str
    gate: str  # lake | mart
    runs: Counter[str] = field(default_factory=Counter)  # window/run status → count
    failed: Counter[str] = field(default_factory=Counter)  # failed expectation → runs


def validation_summary(
    quality_url: str, settings: HubSettings, since: datetime
) -> list[ModuleSummary]:
    """Per module and gate, the runs validated since ``since`` by status."""
    root = Lake.from_settings(settings.model_copy(update={"lake_url": quality_url}))
    base = f"{root.root}/validations"
    if root.fs.get_file_info(base).type is not pafs.FileType.Directory:
        return []
    dataset = ds.dataset(base, filesystem=root.fs, format="parquet", partitioning="hive")
    rows = dataset.to_table(
        columns=["module", "entity", "gate", "run_id", "window_status", "expectation", "action"],
        filter=pc.field("validated_at") >= since,
    ).to_pylist()
    summaries: dict[tuple[str, str], ModuleSummary] = {}
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        key = (str(row["module"]), str(row["gate"]))
        summary = summaries.setdefault(key, ModuleSummary(*key))
        run = (str(row["entity"]), str(row["run_id"]), str(row["gate"]))
        if run not in seen:
            seen.add(run)
            summary.runs[str(row["window_status"])] += 1
        if row["action"] in ("warned", "quarantined", "blocked"):
            summary.failed[f"{row['entity']}: {row['expectation']} ({row['action']})"] += 1
    return [summaries[key] for key in sorted(summaries)]
