"""An S3 endpoint on 127.0.0.1 backed by moto's server mode.

Everything that speaks S3 over HTTP (boto3, ``pyarrow.fs.S3FileSystem``, polars, DuckDB)
reaches it through ``endpoint_url``, exactly as it would reach MinIO or AWS. The access key
and secret are random per server: moto accepts any, and nothing should depend on a literal.
"""

from __future__ import annotations

import logging
import secrets
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from hub_dev.net import HOST

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

REGION = "us-east-1"


class MotoS3Server:
    """moto in server mode on a free port, with one bucket created at start."""

    def __init__(
        self, bucket: str | None = None, *, region: str = REGION, quiet: bool = True
    ) -> None:
        self.quiet = quiet
        self.bucket = bucket or f"hub-lake-{secrets.token_hex(4)}"
        self.region = region
        self.access_key = f"HUBTEST{secrets.token_hex(6).upper()}"
        self.secret_key = secrets.token_urlsafe(30)
        self._server: ThreadedMotoServer | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MotoS3Server is not started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``, for boto3's ``endpoint_url``."""
        return f"http://{HOST}:{self.port}"

    @property
    def endpoint_host(self) -> str:
        """``127.0.0.1:<port>``, for ``pyarrow.fs.S3FileSystem(endpoint_override=...)``."""
        return f"{HOST}:{self.port}"

    @property
    def lake_url(self) -> str:
        """Root of a lake inside the bucket, the form ``HUB_LAKE_URL`` takes."""
        return f"s3://{self.bucket}/lake"

    def start(self) -> Self:
        if self._server is not None:
            return self
        from moto.server import ThreadedMotoServer

        if self.quiet:
            # werkzeug logs every request at INFO; tests make thousands of them.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # Port 0: the OS picks a free port at bind time, so there is no race to retry.
        server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
        server.start()
        self._server = server
        self._port = server.get_host_and_port()[1]
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        try:
            self._server.stop()
        finally:
            self._server = None
            self._port = None

    def env(self) -> dict[str, str]:
        """Environment for code that configures S3 from the standard AWS variables."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def hub_env(self) -> dict[str, str]:
        """``HUB_*`` settings that point the hub's lake at this server."""
        return {
            "HUB_LAKE_URL": self.lake_url,
            "HUB_S3_ENDPOINT_URL": self.endpoint_url,
            "HUB_S3_REGION": self.region,
            "HUB_S3_ACCESS_KEY_ID": self.access_key,
            "HUB_S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def storage_options(self) -> dict[str, str]:
        """Options in the shape polars' and fsspec's object-store readers take."""
        return {
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_region": self.region,
            "aws_endpoint_url": self.endpoint_url,
            "aws_allow_http": "true",
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def filesystem(self) -> Any:
        """A ``pyarrow.fs.S3FileSystem`` for this server, over plain HTTP."""
        from pyarrow import fs

        return fs.S3FileSystem(
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            endpoint_override=self.endpoint_host,
            scheme="http",
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
