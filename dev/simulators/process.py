"""Run the simulator in a child process (its own GIL) for tests and benchmarks."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from simulators.config import SimulatorConfig

URL_LINE_PREFIX = "SIMULATOR_URL="


class SimulatorProcess:
    """`with SimulatorProcess(config) as sim: httpx.get(sim.url + "/_sim/health")`."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ):
        self.config = config or SimulatorConfig()
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[str] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError(
                "the simulator is not running; use `with SimulatorProcess(...) as sim:`"
            )
        return self._url

    def module_url(self, module: str) -> str:
        """The `host` of a hub connection to `module`."""
        return f"{self.url}/{module}"

    def start(self) -> SimulatorProcess:
        package_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        self._process = subprocess.Popen(
            [sys.executable, "-m", "simulators", *self.config.to_cli_args()],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self._process.stdout
        assert stdout is not None
        threading.Thread(target=_forward_lines, args=(stdout, lines), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while self._url is None:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"simulator exited with code {self._process.returncode} before it was ready"
                )
            try:
                line = lines.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"simulator did not announce its URL within {self.startup_timeout}s"
                    ) from None
                continue
            if line.startswith(URL_LINE_PREFIX):
                self._url = line[len(URL_LINE_PREFIX) :].strip()
        self._wait_healthy(deadline)
        return self

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                if httpx.get(f"{self.url}/_sim/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"simulator at {self._url} never became healthy")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process, self._url = self._process, None, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _forward_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
