"""One typed settings object, read from ``HUB_*`` environment variables.

Airflow tasks overlay values from Airflow connections (see ``airflow_glue``);
nothing else in the package reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Secret key of the keyed hash that pseudonymizes personal fields.",
    )
    page_limit: Annotated[int, Field(ge=1, le=10_000)] = 10_000
    http_timeout_seconds: float = 60.0
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
