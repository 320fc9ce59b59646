"""The dated USD rate table shared with the hub (`analytics_hub/reference/fx_rates.csv`).

The simulator and the hub read the same file, so a converted amount means the
same thing on both sides. `write_fx_table` (re)creates it deterministically.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path

import numpy as np

# The hub's own file (``analytics_hub.fx.RATES_CSV``), found without importing the hub's fx.
FX_TABLE_PATH = Path(str(files("analytics_hub").joinpath("reference", "fx_rates.csv")))
FX_FIRST_DAY = date(2025, 1, 1)
FX_LAST_DAY = date(2027, 12, 31)
_EPOCH = date(1970, 1, 1)
MICRO = 1_000_000


def write_fx_table(path: Path = FX_TABLE_PATH) -> None:
    """A plausible daily random walk for EUR and GBP, fixed forever (not seeded per simulator)."""
    rng = np.random.default_rng(20250101)
    days = (FX_LAST_DAY - FX_FIRST_DAY).days + 1
    start = {"EUR": 1.0850, "GBP": 1.2700}
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    walks = {
        cur: first * np.exp(np.cumsum(rng.normal(0.0, 0.003, days))) for cur, first in start.items()
    }
    for offset in range(days):
        day = (FX_FIRST_DAY + timedelta(days=offset)).isoformat()
        for currency, walk in walks.items():
            rows.append((day, currency, f"{walk[offset]:.6f}"))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("date", "currency", "usd_per_unit"))
        writer.writerows(rows)


class FxTable:
    """USD-per-unit rates as integer micro-units, looked up by UTC day.

    A day outside the table takes the latest earlier row (the first row for days
    before the table starts).
    """

    def __init__(self, path: Path = FX_TABLE_PATH) -> None:
        if not path.exists():
            write_fx_table(path)
        by_currency: dict[str, dict[int, int]] = {}
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                day = (date.fromisoformat(row["date"]) - _EPOCH).days
                by_currency.setdefault(row["currency"], {})[day] = _to_micro(row["usd_per_unit"])
        self._first_day: dict[str, int] = {}
        self._dense: dict[str, np.ndarray] = {}
        for currency, rates in by_currency.items():
            first, last = min(rates), max(rates)
            dense = np.zeros(last - first + 1, dtype=np.int64)
            current = rates[first]
            for offset in range(len(dense)):
                current = rates.get(first + offset, current)
                dense[offset] = current
            self._first_day[currency] = first
            self._dense[currency] = dense

    def rate_micro(self, currencies: np.ndarray, epoch_days: np.ndarray) -> np.ndarray:
        """Rates (micro-USD per unit) for parallel arrays of currency codes and UTC epoch days."""
        rates = np.full(len(currencies), MICRO, dtype=np.int64)
        for currency, dense in self._dense.items():
            mask = currencies == currency
            if mask.any():
                index = np.clip(epoch_days[mask] - self._first_day[currency], 0, len(dense) - 1)
                rates[mask] = dense[index]
        return rates


def _to_micro(text: str) -> int:
    whole, _, fraction = text.strip().partition(".")
    return int(whole) * MICRO + int((fraction + "000000")[:6])


if __name__ == "__main__":
    write_fx_table()
