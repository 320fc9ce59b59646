"""Deterministic page faults: the same request key and attempt number always fault the same way."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Literal

from simulators.config import ChaosRates

FaultKind = Literal["rate_limited", "service_unavailable", "internal_error", "stall"]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "rate_limited",
    "service_unavailable",
    "internal_error",
    "stall",
)
# Attempts from this number on always succeed, so a client retrying twice always gets through.
ALWAYS_SUCCEEDS_FROM_ATTEMPT = 3


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    attempt: int


def unit_hash(*parts: object) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class FaultInjector:
    def __init__(self, seed: int, rates: ChaosRates) -> None:
        self.seed = seed
        self.rates = rates
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_attempt(self, request_key: str) -> int:
        with self._lock:
            attempt = self._attempts.get(request_key, 0) + 1
            self._attempts[request_key] = attempt
            return attempt

    def fault_for(self, request_key: str, attempt: int) -> Fault | None:
        if attempt >= ALWAYS_SUCCEEDS_FROM_ATTEMPT or self.rates.fault_rate <= 0:
            return None
        if unit_hash(self.seed, request_key, attempt) >= self.rates.fault_rate:
            return None
        kinds = FAULT_KINDS if self.rates.stall_seconds > 0 else FAULT_KINDS[:3]
        pick = int(unit_hash(self.seed, request_key, attempt, "kind") * len(kinds))
        return Fault(kinds[pick], attempt)
