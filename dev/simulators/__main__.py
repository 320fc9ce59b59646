"""`python -m simulators --port 0 --seed 7 --chaos 0.1 --volume observatory=1000000 ...`

Prints `SIMULATOR_URL=http://HOST:PORT` on stdout once the server accepts requests.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence

import uvicorn

from simulators.app import create_app
from simulators.config import SimulatorConfig


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            print(f"SIMULATOR_URL={self.url}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    config = SimulatorConfig.from_cli_args(argv)
    # Binding ourselves makes port 0 work: the OS picks the port and we know it before serving.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    host, port = sock.getsockname()[:2]
    server_config = uvicorn.Config(
        create_app(config),
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        workers=1,
        timeout_keep_alive=30,
    )
    _AnnouncingServer(server_config, f"http://{host}:{port}").run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
