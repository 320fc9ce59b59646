"""Dated currency rates, kept as data (``reference/fx_rates.csv``), and USD conversion.

A record is converted with the rate of its own day (the UTC date of the field its
``Money`` spec names); a day missing from the table takes the latest earlier rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl

from analytics_hub.sources import Money

RATES_CSV = Path(__file__).with_name("reference") / "fx_rates.csv"
_RATE = pl.Decimal(38, 12)


@dataclass(frozen=True)
class FxRates:
    table: pl.DataFrame  # date (Date), currency (String), usd_per_unit (Decimal), sorted by date

    @classmethod
    def load(cls, path: Path = RATES_CSV) -> FxRates:
        table = pl.read_csv(
            path, schema={"date": pl.Date, "currency": pl.String, "usd_per_unit": pl.String}
        )
        if table.is_empty():
            raise ValueError(f"currency rate table {path} is empty")
        table = table.with_columns(pl.col("usd_per_unit").cast(_RATE)).sort("date")
        return cls(table)

    def convert(self, frame: pl.DataFrame, money: Money) -> pl.DataFrame:
        """Add ``money.output`` (USD, 6 decimals); null where no rate applies."""
        currency = {code: iso for code, (iso, _) in money.units.items()}
        scale = {code: str(factor) for code, (_, factor) in money.units.items()}
        keyed = frame.with_columns(
            pl.col(money.unit).replace_strict(currency, default=None).alias("_currency"),
            pl.col(money.on_date_of).dt.date().alias("_date"),
            pl.int_range(pl.len()).alias("_order"),
        ).sort("_date", nulls_last=True)
        joined = keyed.join_asof(
            self.table.rename({"date": "_date", "currency": "_currency"}),
            on="_date",
            by="_currency",
            strategy="backward",
            check_sortedness=False,
        )
        factor = pl.col(money.unit).replace_strict(scale, default=None).cast(_RATE)
        if money.minor_flag is not None:
            factor = (
                pl.when(pl.col(money.minor_flag) == "minor")
                .then(factor * pl.lit(Decimal("0.01")).cast(_RATE))
                .otherwise(factor)
            )
        rate = (
            pl.when(pl.col("_currency") == "USD")
            .then(pl.lit(Decimal(1)).cast(_RATE))
            .otherwise(pl.col("usd_per_unit"))
        )
        usd = (pl.col(money.amount).cast(_RATE) * factor * rate).round(6).cast(pl.Decimal(38, 6))
        return (
            joined.with_columns(usd.alias(money.output))
            .sort("_order")
            .drop("_currency", "_date", "_order", "usd_per_unit")
        )
