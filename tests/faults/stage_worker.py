"""The land task's work in a process of its own, for tests that kill it or starve its disk.

Imports the hub, prints ``READY``, reads one job (a JSON line: settings, module, entity,
window, the module's URL and token, and an optional file-size limit) from stdin, stages
the window with ``ingest_window`` and prints ``RESULT`` and a JSON report: ``ok`` and the
staged ``version``, or the ``error`` and its type. Exits 0 when staged, 1 otherwise.

A file-size limit (``RLIMIT_FSIZE``) is set once the job is read, with SIGXFSZ ignored,
so a write past it fails with EFBIG as on a full disk, and only this process is affected.
"""

from __future__ import annotations

import resource
import signal
import sys
import traceback

import orjson

from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.fx import FxRates
from analytics_hub.ingest import ingest_window
from analytics_hub.lake import Lake
from analytics_hub.settings import load_settings
from analytics_hub.sources import get_module
from analytics_hub.windows import Window


def main() -> int:
    print("READY", flush=True)
    job = orjson.loads(sys.stdin.readline())
    settings = load_settings(**job["settings"])
    module = get_module(job["module"])
    entity = module.entity(job["entity"])
    window = Window.from_dict(job["window"])
    rates = FxRates.load()
    lake = Lake.from_settings(settings)
    if job.get("file_size_limit") is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(job["file_size_limit"])
        resource.setrlimit(
            resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1])
        )
    try:
        with ModuleClient(module, Endpoint(job["url"], job["token"]), settings) as client:
            manifest = ingest_window(
                module,
                entity,
                window,
                client=client,
                lake=lake,
                rates=rates,
                pseudonym_key=b"faults",
            )
    except Exception as exc:  # reported to the test, which asserts on it
        report = {
            "ok": False,
            "error": type(exc).__name__,
            "message": str(exc),
            "errno": getattr(exc, "errno", None),
            "traceback": traceback.format_exc(),
        }
        print("RESULT " + orjson.dumps(report).decode(), flush=True)
        return 1
    print("RESULT " + orjson.dumps({"ok": True, "version": manifest.version}).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
