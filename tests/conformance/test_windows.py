"""Property: any window a module may serve lands as the contract says (layer a).

For each entity, Hypothesis generates a window's canonical records (good ones, bad ones
with their faults, redeliveries, records just outside the window, fan-out parents) and
the wire spelling of every delivery; the conformance server serves them, the hub lands
the window through ``land_entity`` into a temporary local lake, and:

- the normalized rows equal this suite's expected rows exactly (as a multiset, over the
  columns named in ``contract.py``; floats to 1e-9, ms to 1e-6, USD to 6 decimals);
- the dead letters are exactly the bad records, each with every fault as its reason
  (``code:field``), most specific first;
- the manifest counts pulled, landed, dead-lettered and deduplicated records as sent,
  and balances.

Each kind of finding is asserted on its own line, so Hypothesis reports each separately.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from conformance.checks import describe, land_and_check
from conformance.contract import BY_ID, ENTITIES
from conformance.harness import CONFORMANCE, EXAMPLES
from conformance.server import ConformanceServer
from conformance.worlds import window_worlds

ENTITY_IDS = [e.id for e in ENTITIES]


@pytest.mark.parametrize("ent_id", ENTITY_IDS)
@CONFORMANCE
@given(data=st.data())
def test_a_window_lands_as_the_contract_says(
    hub: ConformanceServer, pseudonym_key: str, ent_id: str, data: Any
) -> None:
    world = data.draw(window_worlds(ent_id), label="world")
    note(describe(world))
    with hub.serving(world):
        found = land_and_check(BY_ID[ent_id], world, pseudonym_key)
    findings = found.by_category
    assert not findings["ingest"], found.text("ingest")
    assert not findings["rows"], found.text("rows")
    assert not findings["dead_letters"], found.text("dead_letters")
    assert not findings["manifest"], found.text("manifest")
    assert not findings["reason_order"], found.text("reason_order")
    assert not findings["columns"], found.text("columns")


@pytest.mark.parametrize("ent_id", ENTITY_IDS)
@settings(CONFORMANCE, max_examples=max(3, EXAMPLES // 5))
@given(data=st.data())
def test_an_empty_window_lands_nothing_and_balances(
    hub: ConformanceServer, pseudonym_key: str, ent_id: str, data: Any
) -> None:
    world = data.draw(window_worlds(ent_id, empty=True), label="world")
    note(describe(world))
    ent = BY_ID[ent_id]
    assert world.expectation(ent, pseudonym_key).pulled == 0
    with hub.serving(world):
        found = land_and_check(ent, world, pseudonym_key)
    findings = found.by_category
    assert not findings["ingest"], found.text("ingest")
    assert not findings["rows"], found.text("rows")
    assert not findings["dead_letters"], found.text("dead_letters")
    assert not findings["manifest"], found.text("manifest")
