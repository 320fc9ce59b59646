"""One typed settings object, read from ``HUB_*`` environment variables.

Airflow tasks overlay values from Airflow connections (see ``orchestration``);
nothing else in the package reads the environment. The quality gates' thresholds are
its ``quality`` part (``HUB_QUALITY_*``). ``load_module_hosts`` reads the modules' real
hosts (``HUB_<MODULE>_URL``, ``_TOKEN``, ``_TIMEZONE``), from which the local commands
build the ``hub_<module>`` connections. ``project_root`` is the checkout every local
default hangs from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytics_hub.sources import MODULES
from analytics_hub.windows import DEFAULT_MAX_MANUAL_SPAN


def project_root() -> Path:
    """The checkout: ``HUB_PROJECT_ROOT``, else the nearest folder holding a
    ``pyproject.toml`` and ``include/``, looked for from the working directory, then from
    this file (so an editable install and a command run in the checkout agree), else the
    working directory.

    The local defaults hang from it: ``.local/`` (lake, quality work folder, the dev
    services' state), ``dbt_project/``, ``.venv-dbt``; a deployment sets those instead.
    """
    override = os.environ.get("HUB_PROJECT_ROOT")
    if override:
        return Path(override).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "pyproject.toml").is_file() and (candidate / "include").is_dir():
                return candidate
    return Path.cwd()


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message names the setting."""


class GateSettings(BaseModel):
    """The quality gates' settings (``HUB_QUALITY_*``), the ``quality`` part of ``HubSettings``."""

    url: str | None = Field(
        default=None,
        description="Where validation history and Data Docs go: a local path or s3://bucket/"
        "prefix; by default a 'quality' folder beside the lake (HUB_LAKE_URL).",
    )
    work_dir: str = Field(
        default_factory=lambda: str(project_root() / ".local" / "quality-work"),
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


class HubSettings(BaseSettings):
    # ``HUB_QUALITY_<FIELD>`` sets ``quality.<field>``: "_" splits a nested name once.
    model_config = SettingsConfigDict(
        env_prefix="HUB_", extra="ignore", env_nested_delimiter="_", env_nested_max_split=1
    )

    lake_url: str = Field(
        default_factory=lambda: str(project_root() / ".local" / "lake"),
        description="Root of the lake: a local directory or s3://bucket/prefix.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 API endpoint for MinIO or moto; empty for AWS."
    )
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    max_manual_window_hours: Annotated[float, Field(gt=0, le=256)] = Field(
        default=DEFAULT_MAX_MANUAL_SPAN.total_seconds() / 3600,
        description="The longest range one manual run may pull or load, split into the "
        "module's scheduled windows. At most 256: a run maps a task per window, and Airflow "
        "maps at most 1024 (core.max_map_length) - 256 hours of a 15-minute module.",
    )
    lake_keep_replaced_days: Annotated[float, Field(ge=0)] = Field(
        default=7,
        description="Days a lake version replaced by a newer one (or staged and never "
        "published) is kept before it is deleted.",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Secret key of the keyed hash that pseudonymizes personal fields.",
    )
    page_limit: Annotated[int, Field(ge=1, le=10_000)] = 10_000
    http_timeout_seconds: float = 60.0
    http_request_deadline_seconds: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="Most seconds one request (or one chunk of an NDJSON stream) may take "
        "in all; a server that trickles bytes never trips the per-read timeout.",
    )
    http_max_page_bytes: Annotated[int, Field(ge=1)] = Field(
        default=256 * 1024 * 1024,
        description="Largest page (or NDJSON line) accepted; reading stops there.",
    )
    http_max_pages: Annotated[int, Field(ge=1)] = Field(
        default=100_000, description="Most pages one listing may have before it is a runaway."
    )
    pull_deadline_seconds: Annotated[float, Field(gt=0)] = Field(
        default=3600.0,
        description="Most seconds one listing or stream may spend waiting on its module.",
    )
    http_max_attempts: Annotated[int, Field(ge=1)] = 6
    http_max_backoff_seconds: float = 60.0
    dbt_project_dir: Path = Field(
        default_factory=lambda: project_root() / "dbt_project",
        description="The dbt project the DAGs run, with its compiled target/manifest.json.",
    )
    dbt_executable: Path = Field(
        default_factory=lambda: project_root() / ".venv-dbt" / "bin" / "dbt",
        description="The dbt the DAGs run: by default that of the project's own virtualenv.",
    )
    quality: GateSettings = Field(default_factory=GateSettings)

    def require_pseudonym_key(self) -> bytes:
        if self.pseudonym_key is None or not self.pseudonym_key.get_secret_value():
            raise ConfigurationError(
                "HUB_PSEUDONYM_KEY is not set: personal fields (user_id, source_ip) cannot be "
                "pseudonymized without the secret key. Set it in the environment or in the "
                "Airflow connection 'hub_pseudonym_key' (password field)."
            )
        return self.pseudonym_key.get_secret_value().encode()


def load_settings(**overrides: object) -> HubSettings:
    """Settings from the environment, with explicit overrides; a clear error if invalid."""
    try:
        return HubSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"HUB_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid hub settings: {problems}") from exc


def load_gate_settings(**overrides: object) -> GateSettings:
    """The ``quality`` part of the settings, with explicit overrides of its own fields."""
    return load_settings(quality=overrides).quality


def quality_url(hub: HubSettings, gate: GateSettings | None = None) -> str:
    """The quality root: ``HUB_QUALITY_URL``, else a ``quality`` folder beside the lake.

    ``gate`` defaults to ``hub.quality``. Beside rather than inside: the lake holds one
    object per window, replaced on re-run, while validation history only grows.
    """
    gate = hub.quality if gate is None else gate
    if gate.url:
        return gate.url
    parsed = urlparse(hub.lake_url)
    if parsed.scheme == "s3":
        parent = PurePosixPath(parsed.path).parent
        prefix = "/".join(p for p in (*parent.parts[1:], "quality") if p)
        return f"s3://{parsed.netloc}/{prefix}"
    path = parsed.path if parsed.scheme == "file" else hub.lake_url
    return str(PurePosixPath(path.rstrip("/")).parent / "quality")


class ModuleHost(BaseModel):
    """A platform module served by a real host, which the hub pulls instead of a simulator."""

    model_config = ConfigDict(frozen=True)

    module: str
    url: str = Field(description="The module's base URL (HUB_<MODULE>_URL).")
    token: SecretStr = Field(description="Its bearer token (HUB_<MODULE>_TOKEN).")
    timezone: str | None = Field(
        default=None,
        description="The zone of its zoneless times (HUB_<MODULE>_TIMEZONE); None: the "
        "module's default from the source table.",
    )


def module_host_variable(module: str, setting: str) -> str:
    """``HUB_<MODULE>_<SETTING>``, e.g. ``HUB_REGISTRY_URL``."""
    return f"HUB_{module.upper()}_{setting.upper()}"


def load_module_hosts(environ: Mapping[str, str] | None = None) -> dict[str, ModuleHost]:
    """The modules whose ``HUB_<MODULE>_URL`` is set (and not empty), by module name.

    Each needs ``HUB_<MODULE>_TOKEN``; ``HUB_<MODULE>_TIMEZONE`` is optional. A module
    without a URL has no real host (the local commands simulate it; a token alone is
    ignored). A URL without a token, a URL that is not http(s) or an unknown zone is a
    ``ConfigurationError`` naming the variable.
    """
    environ = os.environ if environ is None else environ
    hosts: dict[str, ModuleHost] = {}
    for module in MODULES:
        url_name, token_name, zone_name = (
            module_host_variable(module, setting) for setting in ("url", "token", "timezone")
        )
        url = environ.get(url_name, "").strip()
        if not url:
            continue
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"{url_name}={url!r} is not an http(s) URL: set it to the {module} module's "
                "base URL, or leave it empty to use the simulator"
            )
        token = environ.get(token_name, "").strip()
        if not token:
            raise ConfigurationError(
                f"{url_name} is set but {token_name} is not: set {token_name} to the bearer "
                f"token of the {module} module at {url}"
            )
        zone = environ.get(zone_name, "").strip() or None
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigurationError(
                    f"{zone_name}={zone!r} is not a known time zone (e.g. UTC, Europe/Berlin)"
                ) from None
        hosts[module] = ModuleHost(
            module=module, url=url.rstrip("/"), token=SecretStr(token), timezone=zone
        )
    return hosts
