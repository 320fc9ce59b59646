"""The gate's settings (``HUB_QUALITY_*``) and where its results live."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import urlparse

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytics_hub.settings import PROJECT_ROOT, ConfigurationError, HubSettings


class GateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_QUALITY_", extra="ignore")

    url: str | None = Field(
        default=None,
        description="Where validation history and Data Docs go: a local path or s3://bucket/"
        "prefix; by default a 'quality' folder beside the lake (HUB_LAKE_URL).",
    )
    work_dir: str = Field(
        default=str(PROJECT_ROOT / ".local" / "quality-work"),
        description="Local folder of GX's stores when the quality URL is on S3 (GX Core "
        "writes its stores to a filesystem); the Data Docs are copied up from there.",
    )
    max_bad_row_share: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.05,
        description="A window whose share of rows failing blocking row expectations is above "
        "this is blocked whole instead of quarantining the rows.",
    )
    volume_history_days: Annotated[int, Field(ge=1)] = 7
    volume_lower_ratio: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.5,
        description="Volume collapse below this share of the median of the same window on "
        "the previous days blocks the window.",
    )
    volume_upper_ratio: Annotated[float, Field(ge=1)] = Field(
        default=3.0, description="A volume above this multiple of the median warns."
    )
    late_allowance_hours: Annotated[float, Field(ge=0)] = Field(
        default=72.0,
        description="Events older than this before their window's start warn (late data is "
        "kept: it lands in the window it was ingested in).",
    )
    clock_skew_minutes: Annotated[float, Field(ge=0)] = Field(
        default=5.0, description="Event times up to this far past the window's end are fine."
    )
    freshness_grace_minutes: Annotated[float, Field(ge=0)] = Field(
        default=15.0,
        description="The newest event of a window may be one schedule interval plus this "
        "older than the window's end.",
    )
    data_docs_results_limit: Annotated[int, Field(ge=1)] = Field(
        default=200,
        description="Validation runs listed on the Data Docs index page (each is read to build it).",
    )
    # The mart gate (``mart_gate``)
    mart_window_hours: Annotated[float, Field(gt=0)] = Field(
        default=3.0,
        description="The mart gate's first range for a mart with no watermark yet (a new "
        "warehouse or mart): the rows loaded within this many hours before the mart's newest "
        "_loaded_at. After that each run checks what the builds added since the mart's "
        "watermark (hub_meta.mart_gate_watermarks).",
    )


def load_gate_settings(**overrides: object) -> GateSettings:
    try:
        return GateSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"HUB_QUALITY_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid quality settings: {problems}") from exc


def quality_url(hub: HubSettings, gate: GateSettings) -> str:
    """The quality root: ``HUB_QUALITY_URL``, else a ``quality`` folder beside the lake.

    Beside rather than inside: the lake holds one object per window, replaced on re-run,
    while validation history only grows.
    """
    if gate.url:
        return gate.url
    parsed = urlparse(hub.lake_url)
    if parsed.scheme == "s3":
        parent = PurePosixPath(parsed.path).parent
        prefix = "/".join(p for p in (*parent.parts[1:], "quality") if p)
        return f"s3://{parsed.netloc}/{prefix}"
    path = parsed.path if parsed.scheme == "file" else hub.lake_url
    return str(PurePosixPath(path.rstrip("/")).parent / "quality")
