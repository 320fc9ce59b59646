"""The source table is the one declaration of what the hub reads: its docs follow it."""

from __future__ import annotations

import re

from analytics_hub.settings import project_root
from analytics_hub.sources import MODULES, Kind, both_casings, fields_markdown

WIRE_CONTRACT = project_root() / "docs" / "wire-contract.md"


def test_the_wire_contract_shows_the_source_tables_fields() -> None:
    """Regenerate with `python -m analytics_hub.sources` between the markers."""
    doc = WIRE_CONTRACT.read_text()
    section = re.search(r"<!-- fields:begin -->\n(.*)<!-- fields:end -->", doc, re.S)
    assert section is not None
    assert section.group(1) == fields_markdown()


def test_every_required_field_says_why() -> None:
    for module in MODULES.values():
        for entity in module.entities:
            for field in entity.all_fields:
                assert field.why is None or len(field.why) > 10, (module.name, field.name)


def test_every_wire_name_is_read_in_both_casings() -> None:
    for module in MODULES.values():
        for entity in module.entities:
            for field in entity.all_fields:
                names = set(field.wire_names)
                assert names == set(both_casings(tuple(names))), (entity.name, field.name)
    latency = MODULES["observatory"].entity("metrics").fields
    assert "totalLatencyMs" in next(f for f in latency if f.name == "latency_ms").wire_names


def test_open_vocabularies_are_not_enums() -> None:
    open_ones = {
        ("registry", "assets", "category"),
        ("registry", "events", "event_type"),
        ("marketplace", "extensions", "category"),
        ("policy", "violations", "violation_type"),
        ("sentinel", "security_events", "threat_type"),
        ("observatory", "metrics", "region"),
    }
    for module, entity, name in open_ones:
        field = next(f for f in MODULES[module].entity(entity).all_fields if f.name == name)
        assert field.kind is Kind.STRING, (module, entity, name)
