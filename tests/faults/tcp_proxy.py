"""A TCP proxy on 127.0.0.1 that a test can stop, start again and make hang, on cue.

It stands between the hub and a service that cannot be restarted without losing its state
(moto keeps S3 in memory): stopping the proxy is the service going away, starting it again
on the same port is the service coming back, and nothing behind it is lost::

    with TcpProxy(s3.port) as proxy:
        settings = load_settings(s3_endpoint_url=proxy.url, ...)
        proxy.on(rb"PUT /[^ ]*\\.inprogress-", proxy.stop)  # the endpoint dies mid-write
        ...
        proxy.start()  # and comes back

A cue (``on``) is a regular expression over the bytes a client sends: the chunk that
matches is not forwarded, and the action runs (``stop``, or ``hold``: the connection stays
open and silent, so the client waits on an answer that never comes). Every request line
seen is logged (``requests``). Both look at one read at a time, which holds a request's
whole head: an HTTP/1.1 client writes it at once, after the previous answer.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

HOST = "127.0.0.1"
_REQUEST_LINE = re.compile(rb"(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP/1\.[01]\r\n")


@dataclass
class _Cue:
    pattern: re.Pattern[bytes]
    action: Callable[[], None]
    hold: bool
    fired: threading.Event


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>`` until stopped."""

    def __init__(self, target_port: int, port: int = 0):
        self.target_port = target_port
        self._port = port
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._cues: list[_Cue] = []
        self._log: list[tuple[str, str]] = []

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._port}"

    def start(self) -> TcpProxy:
        """Listen (again) on the same port."""
        with self._lock:
            if self._listener is not None:
                return self
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, self._port))
            listener.listen(64)
            self._port = listener.getsockname()[1]
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut every open one, as a dead endpoint does."""
        with self._lock:
            listener, self._listener = self._listener, None
            open_sockets, self._sockets = self._sockets, set()
        for sock in ([listener] if listener else []) + list(open_sockets):
            _close(sock)

    def on(self, pattern: bytes, action: Callable[[], None] | None = None) -> threading.Event:
        """When a client sends bytes matching ``pattern``, swallow them and run ``action``
        (None: hold the connection, silent). Fires once; returns an event set when it has."""
        fired = threading.Event()
        cue = _Cue(re.compile(pattern), action or (lambda: None), action is None, fired)
        with self._lock:
            self._cues.append(cue)
        return fired

    def requests(self) -> list[tuple[str, str]]:
        """(method, target) of every request line the clients sent, oldest first."""
        with self._lock:
            return list(self._log)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- forwarding ---------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        held = False
        try:
            while chunk := source.recv(65536):
                if from_client and (cue := self._cue(chunk)) is not None:
                    # on this thread, before this connection closes: a client that retries
                    # at once must find the endpoint as the action left it
                    cue.action()
                    held = cue.hold
                    cue.fired.set()
                    return
                target.sendall(chunk)
        except OSError:
            pass  # cut by stop() or by the other side
        finally:
            if not held:
                _close(source)
                _close(target)

    def _cue(self, chunk: bytes) -> _Cue | None:
        """The cue this chunk fires, if any (it fires once), after logging its requests."""
        with self._lock:
            self._log += [(m.decode(), t.decode()) for m, t in _REQUEST_LINE.findall(chunk)]
            cue = next((c for c in self._cues if c.pattern.search(chunk)), None)
            if cue is not None:
                self._cues.remove(cue)
            return cue


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected, or closed already
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
