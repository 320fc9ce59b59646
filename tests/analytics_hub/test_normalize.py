"""Every kind of mess in the contract, one test each, with exact expected values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import polars as pl
import pytest

from analytics_hub import parse
from analytics_hub.fx import FxRates
from analytics_hub.normalize import Normalized, normalize, pseudonymize
from analytics_hub.sources import MODULES

KEY = b"test-pseudonym-key"


@pytest.fixture(scope="module")
def rates() -> FxRates:
    return FxRates.load()


def metric(**data: Any) -> dict[str, Any]:
    """A well-formed observatory record; keyword arguments replace payload fields."""
    payload: dict[str, Any] = {
        "request_id": "req-1",
        "model_id": "gpt-x",
        "asset_id": "asset-1",
        "region": "eu-west-1",
        "service": "chat",
        "total_latency_ms": 120.5,
        "input_tokens": 10,
        "output_tokens": 20,
        "status": "ok",
    }
    payload.update(data)
    return {
        "event_id": "obs-1",
        "timestamp": "2026-11-26T13:05:01Z",
        "ingested_at": "2026-11-26T13:05:02Z",
        "source_module": "llm-observatory",
        "event_type": "request.completed",
        "schema_version": "1.4.0",
        "severity": "info",
        "environment": "production",
        "tags": {"region": "eu-west-1"},
        "data": {k: v for k, v in payload.items() if v is not None},
    }


def run(module: str, entity: str, records: list[dict[str, Any]], rates: FxRates) -> Normalized:
    spec = MODULES[module]
    body = orjson.dumps({"status": "success", "data": records, "next_page_token": None})
    parsed = parse.read_page(body, spec.entity(entity))
    assert parsed.token is None and parsed.faults.is_empty()
    return normalize(parsed.records, spec, spec.entity(entity), rates=rates, pseudonym_key=KEY)


def one(result: Normalized, column: str) -> Any:
    assert result.rejects.is_empty(), result.rejects.to_dicts()
    assert result.rows.height == 1
    return result.rows[column][0]


def reasons(result: Normalized) -> list[str]:
    assert result.rows.is_empty()
    return result.rejects["reason"].to_list()


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("2026-11-26T13:05:01Z", datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
        ("2026-11-26T13:05:01.123Z", datetime(2026, 11, 26, 13, 5, 1, 123000, tzinfo=UTC)),
        ("2026-11-26T18:35:01+05:30", datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
        ("2026-11-26T05:05:01-08:00", datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
        ("2026-11-26T18:35:01+0530", datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
        ("2026-11-26T13:05:01", datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
        (1_795_698_301, datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
        (1_795_698_301.5, datetime(2026, 11, 26, 13, 5, 1, 500000, tzinfo=UTC)),
        (1_795_698_301_250, datetime(2026, 11, 26, 13, 5, 1, 250000, tzinfo=UTC)),
        ("2026-11-26 13:05:01", datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
        ("2026-11-26 13:05:01.5Z", datetime(2026, 11, 26, 13, 5, 1, 500000, tzinfo=UTC)),
        ("2026-11-26t13:05:01z", datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
        ("2026-11-26T13:05:01.123456789Z", datetime(2026, 11, 26, 13, 5, 1, 123456, tzinfo=UTC)),
        (
            "2026-11-26T13:05:01.1234567891234Z",
            datetime(2026, 11, 26, 13, 5, 1, 123456, tzinfo=UTC),
        ),
        ("2026-11-26T13:05:01,25Z", datetime(2026, 11, 26, 13, 5, 1, 250000, tzinfo=UTC)),
        ("2026-11-26T18:05:01+05", datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
        ("2026-11-26T13:05Z", datetime(2026, 11, 26, 13, 5, tzinfo=UTC)),
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),
        ("1795698301", datetime(2026, 11, 26, 13, 5, 1, tzinfo=UTC)),
    ],
    ids=[
        "iso-z",
        "iso-fraction",
        "offset-plus",
        "offset-minus",
        "offset-no-colon",
        "zoneless-utc",
        "epoch-s",
        "epoch-s-float",
        "epoch-ms",
        "space-zoneless",
        "space-fraction-lower-z",
        "lower-t-z",
        "nine-digits",
        "thirteen-digits",
        "comma-fraction",
        "offset-hours",
        "no-seconds",
        "date-only",
        "epoch-s-text",
    ],
)
def test_timestamps_become_utc(wire: Any, expected: datetime, rates: FxRates) -> None:
    record = metric()
    record["timestamp"] = wire
    assert one(run("observatory", "metrics", [record], rates), "event_time") == expected


def test_zoneless_time_is_in_the_modules_local_zone(rates: FxRates) -> None:
    """costops sends zoneless times in America/New_York: EST in winter, EDT in summer."""
    record = cost_record(usage_start="2026-11-26T08:00:00", usage_end="2026-07-01T08:00:00")
    result = run("costops", "cost_records", [record], rates)
    assert one(result, "usage_start") == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    assert one(result, "usage_end") == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def test_a_space_separated_zoneless_time_is_in_the_modules_local_zone(rates: FxRates) -> None:
    record = cost_record(usage_start="2026-11-26 08:00:00", usage_end="2026-11-26 09:00")
    result = run("costops", "cost_records", [record], rates)
    assert one(result, "usage_start") == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    assert one(result, "usage_end") == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def camel(record: dict[str, Any]) -> dict[str, Any]:
    """The record with every key, envelope and payload, in camelCase."""

    def spell(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part[:1].upper() + part[1:] for part in rest)

    return {
        spell(k): camel(v) if isinstance(v, dict) and k == "data" else v for k, v in record.items()
    }


def test_camel_case_payload_fields_land_like_snake_case(rates: FxRates) -> None:
    snake = metric(response_size_kib=2, ttft_s="0.25")
    camelled = camel(metric(response_size_kib=2, ttft_s="0.25"))
    assert "totalLatencyMs" in camelled["data"] and "responseSizeKib" in camelled["data"]
    result = run("observatory", "metrics", [snake, camelled], rates)
    assert result.rejects.is_empty(), result.rejects.to_dicts()
    first, second = result.rows.drop("_row").to_dicts()
    assert first == second
    assert second["latency_ms"] == 120.5 and second["response_bytes"] == 2048
    assert second["ttft_ms"] == 250.0 and second["model_id"] == "gpt-x"


def test_casing_is_per_field_and_per_record(rates: FxRates) -> None:
    mixed = cost_record()
    mixed["data"]["costRecordId"] = mixed["data"].pop("cost_record_id")
    mixed["data"]["costUnit"] = mixed["data"].pop("cost_unit")
    other = cost_record()
    other["event_id"], other["data"]["record_version"] = "cost-evt-2", 2
    result = run("costops", "cost_records", [mixed, other], rates)
    assert result.rejects.is_empty(), result.rejects.to_dicts()
    assert result.rows["cost_record_id"].to_list() == [mixed["data"]["costRecordId"]] * 2
    assert result.rows["cost_usd"].n_unique() == 1


def test_state_fields_are_read_in_camel_case(rates: FxRates) -> None:
    asset = {
        "assetId": "asset-9",
        "assetName": "Summarizer",
        "category": "speech-to-text",  # an open vocabulary: not in any list of ours
        "owner": "team-a",
        "createdAt": "2026-11-20 10:00:00",
        "updatedAt": "2026-11-26T10:00:00Z",
    }
    result = run("registry", "assets", [asset], rates)
    assert one(result, "asset_id") == "asset-9" and one(result, "asset_name") == "Summarizer"
    assert one(result, "category") == "speech-to-text"
    assert one(result, "created_at") == datetime(2026, 11, 20, 10, tzinfo=UTC)


def test_telemetry_reads_region_service_and_model_from_the_envelopes_tags(
    rates: FxRates,
) -> None:
    record = metric(region=None, service=None, model_id=None)
    record["tags"] = {"region": "ap-south-1", "service": "search", "model_id": "m-7"}
    result = run("observatory", "metrics", [record], rates)
    assert one(result, "region") == "ap-south-1" and one(result, "service") == "search"
    assert one(result, "model_id") == "m-7"


def test_the_payload_wins_over_the_tags(rates: FxRates) -> None:
    record = metric(region="eu-west-1")
    record["tags"] = {"region": "us-east-1"}
    assert one(run("observatory", "metrics", [record], rates), "region") == "eu-west-1"


def test_fields_the_contract_does_not_require_may_be_absent(rates: FxRates) -> None:
    record = metric(
        request_id=None, asset_id=None, region=None, service=None, status=None, input_tokens=None
    )
    record["tags"] = {}
    result = run("observatory", "metrics", [record], rates)
    assert one(result, "latency_ms") == 120.5
    assert one(result, "region") is None and one(result, "input_tokens") is None


def test_a_fan_out_record_takes_its_parent_id_from_the_path(rates: FxRates) -> None:
    spec = MODULES["registry"]
    versions = spec.entity("versions")
    body = orjson.dumps({"status": "success", "data": [{"version": "1.2.0"}]})
    frame = parse.read_page(body, versions).records
    result = normalize(frame, spec, versions, rates=rates, pseudonym_key=KEY, parent_id="a-1")
    assert one(result, "asset_id") == "a-1" and one(result, "version") == "1.2.0"
    assert one(result, "updated_at") is None  # the contract gives versions no updated_at


def test_open_vocabularies_are_not_enums(rates: FxRates) -> None:
    violation = {
        "eventId": "pol-9",
        "timestamp": "2026-11-26T13:05:01Z",
        "ingestedAt": "2026-11-26T13:05:02Z",
        "eventType": "violation.detected",
        "data": {"violationId": "v-1", "violationType": "prompt_leak", "severity": "HIGH"},
    }
    result = run("policy", "violations", [violation], rates)
    assert one(result, "violation_type") == "prompt_leak"
    assert one(result, "violation_severity") == "high"


@pytest.mark.parametrize(
    ("field", "value", "ms"),
    [
        ("total_latency_ms", 120.5, 120.5),
        ("total_latency_s", "0.1205", 120.5),
        ("total_latency_us", 120500, 120.5),
        ("total_latency_ns", 120500000, 120.5),
    ],
)
def test_durations_become_ms(field: str, value: Any, ms: float, rates: FxRates) -> None:
    record = metric()
    del record["data"]["total_latency_ms"]
    record["data"][field] = value
    assert one(run("observatory", "metrics", [record], rates), "latency_ms") == pytest.approx(ms)


@pytest.mark.parametrize(
    ("field", "value", "size"),
    [
        ("response_bytes", 2048, 2048),
        ("response_size_kb", "2.048", 2048),
        ("response_size_kib", 2, 2048),
        ("response_size_mb", 0.002048, 2048),
    ],
)
def test_sizes_become_bytes(field: str, value: Any, size: int, rates: FxRates) -> None:
    record = metric(**{field: value})
    assert one(run("observatory", "metrics", [record], rates), "response_bytes") == size


def test_numbers_may_arrive_as_strings(rates: FxRates) -> None:
    record = metric(input_tokens="10", output_tokens=" 20 ")
    result = run("observatory", "metrics", [record], rates)
    assert (one(result, "input_tokens"), one(result, "output_tokens")) == (10, 20)


def test_camel_case_envelope_and_renamed_fields(rates: FxRates) -> None:
    record = metric(model_id=None, model="gpt-y")
    for snake, camel in [
        ("event_id", "eventId"),
        ("event_type", "eventType"),
        ("schema_version", "version"),
        ("source_module", "source"),
        ("ingested_at", "ingestedAt"),
    ]:
        record[camel] = record.pop(snake)
    result = run("observatory", "metrics", [record], rates)
    assert one(result, "event_id") == "obs-1"
    assert one(result, "model_id") == "gpt-y"
    assert one(result, "schema_version") == "1.4.0"
    assert one(result, "source_module") == "llm-observatory"


def test_tags_become_a_struct_of_the_platforms_tag_keys(rates: FxRates) -> None:
    record = metric()
    record["tags"] = {"region": "eu-west-1", "service": "chat", "unlisted": "raw zone only"}
    tags = one(run("observatory", "metrics", [record], rates), "tags")
    assert tags == {
        "region": "eu-west-1",
        "model_id": None,
        "service": "chat",
        "team": None,
        "tenant": None,
        "deployment": None,
    }


def test_the_connection_can_set_the_local_zone(rates: FxRates) -> None:
    spec = MODULES["costops"]
    body = orjson.dumps({"data": [cost_record(usage_start="2026-11-26T08:00:00")]})
    frame = parse.read_page(body, spec.entity("cost_records")).records
    result = normalize(
        frame,
        spec,
        spec.entity("cost_records"),
        rates=rates,
        pseudonym_key=KEY,
        local_timezone="Asia/Kolkata",
    )
    assert one(result, "usage_start") == datetime(2026, 11, 26, 2, 30, tzinfo=UTC)


def cost_record(**data: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "cost_record_id": "cost-1",
        "account_id": "acct-1",
        "asset_id": "asset-1",
        "model_id": "gpt-x",
        "usage_start": "2026-11-26T13:00:00Z",
        "usage_end": "2026-11-26T14:00:00Z",
        "input_tokens": 1000,
        "output_tokens": 500,
        "cost": "12.34",
        "cost_unit": "USD",
        "record_version": 1,
    }
    payload.update(data)
    return {
        "event_id": "cost-evt-1",
        "timestamp": "2026-11-26T14:00:00Z",
        "ingested_at": "2026-11-26T14:00:05Z",
        "event_type": "cost.recorded",
        "data": {k: v for k, v in payload.items() if v is not None},
    }


def rate_on(rates: FxRates, currency: str, day: str) -> Decimal:
    table = rates.table.filter(
        (pl.col("currency") == currency) & (pl.col("date") <= datetime.fromisoformat(day).date())
    )
    return Decimal(str(table["usd_per_unit"][-1]))


@pytest.mark.parametrize(
    ("cost", "unit", "usd"),
    [
        ("12.34", "USD", Decimal("12.34")),
        (1234, "cents", Decimal("12.34")),
        (12340000, "micro-USD", Decimal("12.34")),
    ],
)
def test_cost_units_become_usd(cost: Any, unit: str, usd: Decimal, rates: FxRates) -> None:
    result = run("costops", "cost_records", [cost_record(cost=cost, cost_unit=unit)], rates)
    assert one(result, "cost_usd") == usd


@pytest.mark.parametrize("currency", ["EUR", "GBP"])
def test_foreign_cost_uses_the_rate_of_the_records_day(currency: str, rates: FxRates) -> None:
    result = run("costops", "cost_records", [cost_record(cost="12.34", cost_unit=currency)], rates)
    expected = (Decimal("12.34") * rate_on(rates, currency, "2026-11-26")).quantize(Decimal("1e-6"))
    assert one(result, "cost_usd") == expected


def test_revenue_in_minor_units(rates: FxRates) -> None:
    record = {
        "event_id": "mkt-1",
        "timestamp": "2026-11-26T13:00:00Z",
        "ingested_at": "2026-11-26T13:00:01Z",
        "event_type": "revenue.recorded",
        "data": {
            "extension_id": "ext-1",
            "period_start": "2026-11-25T00:00:00Z",
            "amount": 1999,
            "currency": "EUR",
            "amount_unit": "minor",
        },
    }
    result = run("marketplace", "revenue", [record], rates)
    expected = (Decimal("19.99") * rate_on(rates, "EUR", "2026-11-25")).quantize(Decimal("1e-6"))
    assert one(result, "amount_usd") == expected


def test_personal_fields_are_pseudonymized_with_the_key(rates: FxRates) -> None:
    record = {
        "event_id": "sec-1",
        "timestamp": "2026-11-26T13:00:00Z",
        "ingested_at": "2026-11-26T13:00:01Z",
        "event_type": "threat.detected",
        "data": {
            "threat_id": "t-1",
            "security_type": "threat",
            "threat_type": "jailbreak",
            "threat_level": "high",
            "severity_score": 7.5,
            "mitigation_status": "blocked",
            "asset_id": "asset-1",
            "source_ip": "203.0.113.9",
            "user_id": "alice",
        },
    }
    result = run("sentinel", "security_events", [record], rates)
    assert one(result, "user_id") == pseudonymize(pl.Series(["alice"]), KEY)[0]
    assert one(result, "user_id") != pseudonymize(pl.Series(["alice"]), b"other-key")[0]
    assert len(one(result, "source_ip")) == 64
    assert "alice" not in str(result.rows.to_dicts())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model_id": None}, "missing_required:model_id"),
        ({"total_latency_ms": None}, "missing_required:latency_ms"),
        ({"status": "maybe"}, "unknown_enum:status"),
        ({"input_tokens": -5}, "negative_number:input_tokens"),
        ({"output_tokens": "twelve"}, "unparseable_number:output_tokens"),
        ({"total_latency_ms": "fast"}, "unparseable_number:latency_ms"),
        ({"input_tokens": 1.5}, "unparseable_number:input_tokens"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(
    change: dict[str, Any], reason: str, rates: FxRates
) -> None:
    good = metric()
    good["event_id"] = "obs-good"
    result = run("observatory", "metrics", [metric(**change), good], rates)
    assert result.rows["event_id"].to_list() == ["obs-good"]
    assert result.rejects["reason"].to_list() == [reason]
    assert result.rejects["_row"].to_list() == [0]


def test_unparseable_time_is_rejected(rates: FxRates) -> None:
    record = metric()
    record["timestamp"] = "26/11/2026 13:05"
    assert reasons(run("observatory", "metrics", [record], rates)) == [
        "unparseable_time:event_time"
    ]


def test_every_reason_is_reported(rates: FxRates) -> None:
    record = metric(status="maybe", input_tokens=-1)
    assert reasons(run("observatory", "metrics", [record], rates)) == [
        "negative_number:input_tokens;unknown_enum:status"
    ]


def test_the_most_specific_reason_comes_first(rates: FxRates) -> None:
    record = metric(model_id=None, input_tokens=-3, ttft_ms="soon")
    record["timestamp"] = "yesterday"
    result = run("observatory", "metrics", [record], rates)
    assert reasons(result) == [
        "unparseable_time:event_time;unparseable_number:ttft_ms;"
        "negative_number:input_tokens;missing_required:model_id"
    ]
    assert result.rejects["reason_code"].to_list() == ["unparseable_time"]


def test_enum_casing_is_normalized(rates: FxRates) -> None:
    assert one(run("observatory", "metrics", [metric(status="OK")], rates), "status") == "ok"


def test_no_rate_is_no_fault_of_its_own_where_the_unit_is_missing(rates: FxRates) -> None:
    record = cost_record(cost_unit=None)
    assert reasons(run("costops", "cost_records", [record], rates)) == [
        "missing_required:cost_unit"
    ]


def test_a_dead_letters_raw_record_is_the_record_as_valid_json() -> None:
    record = metric(status="maybe")
    record["data"]["error_code"] = 'said "hi" \\ then\nleft'
    record["data"]["total_latency_ms"] = 34.0
    body = orjson.dumps({"status": "success", "data": [record], "next_page_token": None})
    (raw,) = parse.raw_records(body, ndjson=False).to_list()
    assert orjson.loads(raw) == record
