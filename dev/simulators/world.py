"""The stable population every module refers to: assets, extensions, accounts, budgets, ...

It is a function of the seed alone, so an asset id seen in observatory metrics
is an asset the registry serves, whatever the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import numpy as np

US_PER_SECOND = 1_000_000
US_PER_HOUR = 3600 * US_PER_SECOND
US_PER_DAY = 24 * US_PER_HOUR
# Populations exist from here on; state changes are generated for later hours only.
WORLD_START_US = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp()) * US_PER_SECOND

ASSET_COUNT = 50
EXTENSION_COUNT = 20
ACCOUNT_COUNT = 10
POLICY_COUNT = 15
USER_COUNT = 300

ASSET_CATEGORIES = (
    "language-model",
    "embedding",
    "dataset",
    "prompt-template",
    "fine-tune",
    "evaluation-suite",
)
TEAMS = (
    "team-search",
    "team-ml-platform",
    "team-support-bots",
    "team-data",
    "team-safety",
    "team-growth",
)
MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "claude-3-5-sonnet",
    "llama-3-70b",
    "mistral-large",
    "gemini-1.5-pro",
    "text-embedding-3-large",
    "command-r-plus",
)
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1")
SERVICES = ("chat-api", "search", "summarizer", "agent-runtime", "batch-embeddings")
EXTENSION_CATEGORIES = ("analytics", "security", "cost", "quality", "observability")
PUBLISHERS = ("acme-labs", "northwind", "contoso-ai", "initech", "umbrella-data")
CURRENCIES = ("USD", "EUR", "GBP")
NAME_WORDS = (
    "atlas",
    "beacon",
    "cedar",
    "delta",
    "ember",
    "falcon",
    "glacier",
    "harbor",
    "iris",
    "juniper",
)


def uuid_like(rng: np.random.Generator, prefix: str, count: int) -> list[str]:
    """`<prefix>-xxxxxxxx-xxxx-4xxx-xxxx-xxxxxxxxxxxx` ids drawn from `rng`."""
    hexed = rng.bytes(16 * count).hex()
    ids = []
    for offset in range(0, 32 * count, 32):
        h = hexed[offset : offset + 32]
        ids.append(f"{prefix}-{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}")
    return ids


@dataclass(frozen=True)
class World:
    asset_ids: np.ndarray
    asset_names: np.ndarray
    asset_categories: np.ndarray
    asset_owners: np.ndarray
    asset_tags: tuple[tuple[str, ...], ...]
    asset_created_us: np.ndarray
    # Versions of asset i are published every `version_interval_us[i]` from its creation.
    version_interval_us: np.ndarray
    extension_ids: np.ndarray
    extension_names: np.ndarray
    extension_publishers: np.ndarray
    extension_categories: np.ndarray
    extension_base_installs: np.ndarray
    extension_installs_per_day: np.ndarray
    account_ids: np.ndarray
    budget_ids: np.ndarray
    budget_currencies: np.ndarray
    budget_base_limits_cents: np.ndarray
    policy_ids: np.ndarray
    user_ids: np.ndarray
    model_input_price_micro: np.ndarray
    model_output_price_micro: np.ndarray


@cache
def build_world(seed: int) -> World:
    rng = np.random.default_rng([seed, 0xC0FFEE])
    names = np.array(
        [
            f"{NAME_WORDS[i % 10]}-{NAME_WORDS[(i * 7 + 3) % 10]}-{i:02d}"
            for i in range(ASSET_COUNT)
        ],
        dtype=object,
    )
    tags = tuple(
        tuple(
            sorted(
                set(
                    rng.choice(
                        ["pii", "external", "beta", "critical", "eu-only", "gpu"], 2
                    ).tolist()
                )
            )
        )
        for _ in range(ASSET_COUNT)
    )
    year_us = 365 * US_PER_DAY
    return World(
        asset_ids=np.array(uuid_like(rng, "reg", ASSET_COUNT), dtype=object),
        asset_names=names,
        asset_categories=rng.choice(np.array(ASSET_CATEGORIES, dtype=object), ASSET_COUNT),
        asset_owners=rng.choice(np.array(TEAMS, dtype=object), ASSET_COUNT),
        asset_tags=tags,
        asset_created_us=(
            WORLD_START_US - rng.integers(1, year_us // 1000, ASSET_COUNT) * 1000
        ).astype(np.int64),
        version_interval_us=rng.integers(10, 40, ASSET_COUNT).astype(np.int64) * US_PER_DAY,
        extension_ids=np.array(uuid_like(rng, "mkt", EXTENSION_COUNT), dtype=object),
        extension_names=np.array(
            [f"{NAME_WORDS[i % 10]}-insights-{i:02d}" for i in range(EXTENSION_COUNT)], dtype=object
        ),
        extension_publishers=rng.choice(np.array(PUBLISHERS, dtype=object), EXTENSION_COUNT),
        extension_categories=rng.choice(
            np.array(EXTENSION_CATEGORIES, dtype=object), EXTENSION_COUNT
        ),
        extension_base_installs=rng.integers(10, 5000, EXTENSION_COUNT).astype(np.int64),
        extension_installs_per_day=rng.integers(0, 40, EXTENSION_COUNT).astype(np.int64),
        account_ids=np.array(uuid_like(rng, "cost", ACCOUNT_COUNT), dtype=object),
        budget_ids=np.array(uuid_like(rng, "cost", ACCOUNT_COUNT), dtype=object),
        budget_currencies=rng.choice(np.array(CURRENCIES, dtype=object), ACCOUNT_COUNT),
        budget_base_limits_cents=rng.integers(1_000, 50_000, ACCOUNT_COUNT).astype(np.int64) * 100,
        policy_ids=np.array(uuid_like(rng, "pol", POLICY_COUNT), dtype=object),
        user_ids=np.array(
            [f"user-{v:08x}" for v in rng.integers(0, 2**32, USER_COUNT).tolist()], dtype=object
        ),
        model_input_price_micro=rng.integers(1, 6, len(MODELS)).astype(np.int64),
        model_output_price_micro=rng.integers(3, 20, len(MODELS)).astype(np.int64),
    )
