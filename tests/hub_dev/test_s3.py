"""moto's S3 server is reachable over HTTP by boto3 and by pyarrow's own S3 client."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs

from hub_dev.s3 import MotoS3Server

pytestmark = pytest.mark.integration


def _key(name: str) -> str:
    return f"stack-tests/{uuid.uuid4().hex}/{name}"


def test_endpoint_is_local_http(s3_server: MotoS3Server) -> None:
    assert s3_server.endpoint_url == f"http://127.0.0.1:{s3_server.port}"
    buckets = [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
    assert s3_server.bucket in buckets


def test_boto3_round_trip(s3_server: MotoS3Server) -> None:
    s3 = s3_server.client()
    key = _key("hello.txt")
    s3.put_object(Bucket=s3_server.bucket, Key=key, Body=b"hello lake")
    assert s3.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() == b"hello lake"


def test_pyarrow_reads_what_boto3_wrote(s3_server: MotoS3Server) -> None:
    key = _key("from-boto3.bin")
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=b"\x00\x01payload")
    s3fs = fs.S3FileSystem(
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=s3_server.region,
        endpoint_override=s3_server.endpoint_host,
        scheme="http",
    )
    with s3fs.open_input_stream(f"{s3_server.bucket}/{key}") as stream:
        assert stream.read() == b"\x00\x01payload"


def test_boto3_reads_what_pyarrow_wrote(s3_server: MotoS3Server) -> None:
    key = _key("from-pyarrow.bin")
    with s3_server.filesystem().open_output_stream(f"{s3_server.bucket}/{key}") as out:
        out.write(b"written by arrow")
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
    assert body == b"written by arrow"


def test_parquet_dataset_round_trip(s3_server: MotoS3Server) -> None:
    table = pa.table({"event_id": ["a", "b", "c"], "latency_ms": [1.5, 2.0, 30.25]})
    root = f"{s3_server.bucket}/{_key('dataset')}"
    s3fs = s3_server.filesystem()
    pq.write_to_dataset(table, root, filesystem=s3fs)
    infos = s3fs.get_file_info(fs.FileSelector(root, recursive=True))
    assert any(info.path.endswith(".parquet") for info in infos)
    back = pq.read_table(root, filesystem=s3fs).sort_by("event_id")
    assert back.equals(table)
