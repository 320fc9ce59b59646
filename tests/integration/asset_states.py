"""Registry asset states in the warehouse, for the tests of both warehouse paths: a state
delivered late, and the facts whose asset columns are not the state of their time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from analytics_hub import warehouse

# The facts that carry the asset as it was at their time (dim_assets), with their time
# column and the asset columns that must equal the state's. A registry event keeps a name
# of its own, so only its category and owner are the state's.
ASSET_FACTS = {
    "fct_requests": "event_time",
    "fct_violations": "event_time",
    "fct_evaluations": "event_time",
    "fct_security_events": "event_time",
    "fct_cost_records": "usage_start",
    "fct_registry_events": "event_time",
}
STATE_COLUMNS = {"asset_name": "asset_name", "asset_category": "category", "asset_owner": "owner"}


def deliver_asset_state(dsn: str, asset_id: str, updated_at: datetime, **values: Any) -> None:
    """A new state of `asset_id` from `updated_at` on, landed now, as the registry's late
    delivery: the asset's newest landed state with `values` (landing columns) changed."""
    changed = {"updated_at": updated_at, **values}
    schema, name = warehouse.landing_table("registry", "assets").split(".")
    table = sql.Identifier(schema, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        columns = [
            column
            for (column,) in conn.execute(
                "select column_name from information_schema.columns where table_schema = %s"
                " and table_name = %s and column_name <> %s order by ordinal_position",
                (schema, name, warehouse.LOADED_AT),
            ).fetchall()
        ]
        assert set(changed) <= set(columns), (
            f"no such landing columns: {set(changed) - set(columns)}"
        )
        listed = sql.SQL(", ").join(map(sql.Identifier, columns))
        chosen = sql.SQL(", ").join(
            sql.Literal(changed[column]) if column in changed else sql.Identifier(column)
            for column in columns
        )
        inserted = conn.execute(
            sql.SQL(
                "insert into {table} ({listed}) select {chosen} from {table}"
                " where asset_id = {asset} order by updated_at desc limit 1"
            ).format(table=table, listed=listed, chosen=chosen, asset=sql.Literal(asset_id))
        )
        assert inserted.rowcount == 1, f"asset {asset_id} has no landed state to follow"


def facts_off_their_asset_state(dsn: str, facts: list[str] | None = None) -> dict[str, int]:
    """Per fact: how many of its rows carry asset columns other than those of the
    dim_assets state valid at their time (nulls where none is)."""
    off = {}
    with psycopg.connect(dsn) as conn:
        for fact in facts or list(ASSET_FACTS):
            time = ASSET_FACTS[fact]
            columns = {
                column: state
                for column, state in STATE_COLUMNS.items()
                if not (fact == "fct_registry_events" and column == "asset_name")
            }
            row = conn.execute(
                sql.SQL(
                    "select count(*) from analytics.{fact} as facts"
                    " left join analytics.dim_assets as assets"
                    " on assets.asset_id = facts.asset_id"
                    " and facts.{time} >= assets.valid_from and facts.{time} < assets.valid_to"
                    " where ({columns}) is distinct from ({states})"
                ).format(
                    fact=sql.Identifier(fact),
                    time=sql.Identifier(time),
                    columns=sql.SQL(", ").join(
                        sql.Identifier("facts", column) for column in columns
                    ),
                    states=sql.SQL(", ").join(
                        sql.Identifier("assets", state) for state in columns.values()
                    ),
                )
            ).fetchone()
            assert row is not None
            off[fact] = row[0]
    return off
