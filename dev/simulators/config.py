"""Typed configuration of the simulator service, convertible to and from CLI arguments."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

MODULES: tuple[str, ...] = (
    "registry",
    "policy",
    "marketplace",
    "observatory",
    "sentinel",
    "costops",
)
# Feed receivers authenticate like modules; governance only receives.
TOKEN_HOLDERS: tuple[str, ...] = (*MODULES, "governance")

# Records per hour of each module's main entity; secondary entities take a share of it.
DEFAULT_VOLUME: Mapping[str, int] = {
    "registry": 50,
    "policy": 50,
    "marketplace": 50,
    "observatory": 200,
    "sentinel": 50,
    "costops": 50,
}


@dataclass(frozen=True)
class ChaosRates:
    """The fine-grained chaos knobs after `chaos` defaults and overrides are resolved."""

    fault_rate: float
    stall_seconds: float
    malformed_rate: float
    duplicate_rate: float
    late_rate: float


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that determines what the simulator serves.

    With `chaos == 0` and no rate overrides, responses are a pure function of
    (seed, volume, request).
    """

    seed: int = 7
    chaos: float = 0.0
    volume: Mapping[str, int] = field(default_factory=dict)
    fault_rate: float | None = None
    stall_seconds: float | None = None
    malformed_rate: float | None = None
    duplicate_rate: float | None = None
    late_rate: float | None = None
    tokens: Mapping[str, str] = field(default_factory=dict)
    retry_after_seconds: int = 1
    cache_mb: int = 3072
    # Frozen "now" for unwindowed state endpoints (current state); None = wall clock.
    now: datetime | None = None
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.chaos <= 1.0:
            raise ValueError(f"chaos must be within [0, 1], got {self.chaos}")
        for module, records in self.volume.items():
            if module not in MODULES:
                raise ValueError(f"volume: unknown module {module!r}; expected one of {MODULES}")
            if records < 0:
                raise ValueError(f"volume[{module}] must be >= 0, got {records}")
        for holder in self.tokens:
            if holder not in TOKEN_HOLDERS:
                raise ValueError(
                    f"tokens: unknown module {holder!r}; expected one of {TOKEN_HOLDERS}"
                )

    def volume_of(self, module: str) -> int:
        return int(self.volume.get(module, DEFAULT_VOLUME[module]))

    def token_of(self, module: str) -> str:
        return self.tokens.get(module, f"sim-{module}-token")

    @property
    def rates(self) -> ChaosRates:
        def pick(override: float | None, default: float) -> float:
            return default if override is None else override

        return ChaosRates(
            fault_rate=pick(self.fault_rate, 0.5 * self.chaos),
            stall_seconds=pick(self.stall_seconds, 2.0 if self.chaos > 0 else 0.0),
            malformed_rate=pick(self.malformed_rate, 0.2 * self.chaos),
            duplicate_rate=pick(self.duplicate_rate, 0.2 * self.chaos),
            late_rate=pick(self.late_rate, 0.2 * self.chaos),
        )

    def to_cli_args(self) -> list[str]:
        args = ["--host", self.host, "--port", str(self.port), "--seed", str(self.seed)]
        args += ["--chaos", repr(self.chaos), "--retry-after", str(self.retry_after_seconds)]
        args += ["--cache-mb", str(self.cache_mb)]
        for name in (
            "fault_rate",
            "stall_seconds",
            "malformed_rate",
            "duplicate_rate",
            "late_rate",
        ):
            value = getattr(self, name)
            if value is not None:
                args += [f"--{name.replace('_', '-')}", repr(value)]
        for module, records in sorted(self.volume.items()):
            args += ["--volume", f"{module}={records}"]
        for holder, token in sorted(self.tokens.items()):
            args += ["--token", f"{holder}={token}"]
        if self.now is not None:
            args += ["--now", self.now.isoformat()]
        return args

    @classmethod
    def from_cli_args(cls, argv: Sequence[str] | None = None) -> SimulatorConfig:
        parsed = _parser().parse_args(argv)
        return cls(
            seed=parsed.seed,
            chaos=parsed.chaos,
            volume={k: int(v) for k, v in _pairs(parsed.volume, "--volume").items()},
            fault_rate=parsed.fault_rate,
            stall_seconds=parsed.stall_seconds,
            malformed_rate=parsed.malformed_rate,
            duplicate_rate=parsed.duplicate_rate,
            late_rate=parsed.late_rate,
            tokens=_pairs(parsed.token, "--token"),
            retry_after_seconds=parsed.retry_after,
            cache_mb=parsed.cache_mb,
            now=datetime.fromisoformat(parsed.now) if parsed.now else None,
            host=parsed.host,
            port=parsed.port,
        )


def _pairs(items: Sequence[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{option} expects MODULE=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators", description="Serve the six module simulators over HTTP."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--chaos", type=float, default=0.0, help="0..1, sets the default rates below"
    )
    parser.add_argument(
        "--fault-rate", type=float, default=None, help="share of page requests that fault"
    )
    parser.add_argument("--stall-seconds", type=float, default=None)
    parser.add_argument("--malformed-rate", type=float, default=None)
    parser.add_argument("--duplicate-rate", type=float, default=None)
    parser.add_argument("--late-rate", type=float, default=None)
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on 429/503")
    parser.add_argument(
        "--cache-mb", type=int, default=3072, help="budget of the rendered-block cache"
    )
    parser.add_argument("--volume", action="append", default=[], metavar="MODULE=RECORDS_PER_HOUR")
    parser.add_argument("--token", action="append", default=[], metavar="MODULE=TOKEN")
    parser.add_argument(
        "--now", default=None, help="freeze 'now' (ISO-8601) for current-state endpoints"
    )
    return parser
