"""One typed settings object, read from ``HUB_*`` environment variables.

Airflow tasks overlay values from Airflow connections (see ``airflow_glue``);
nothing else in the package reads the environment. ``load_module_hosts`` reads the
modules' real hosts (``HUB_<MODULE>_URL``, ``_TOKEN``, ``_TIMEZONE``), from which the
local commands build the ``hub_<module>`` connections.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytics_hub.sources import MODULES
from analytics_hub.windows import DEFAULT_MAX_MANUAL_SPAN

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message names the setting."""


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    lake_url: str = Field(
        default=str(PROJECT_ROOT / ".local" / "lake"),
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
