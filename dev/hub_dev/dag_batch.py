"""Run several ``airflow dags test`` runs one after another in one process.

Each run is what ``airflow dags test <dag_id> --dagfile-path <file> --conf <json>`` does
(the CLI's own parser and command, so nothing of it is reimplemented here), but the
process pays Airflow's start-up, the in-process execution API it builds at the first task
and the tasks' imports (GX's among them) once rather than per run.

Used as ``python -m hub_dev.dag_batch '<json list of [dag_id, path, conf]>'``
by ``airflow_env.dags_test_many``, which splits the output at the markers printed here.
"""

from __future__ import annotations

import json
import sys
import traceback

MARK = "@@hub-dag-batch@@"


def main(argv: list[str]) -> int:
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    failures = 0
    for dag_id, path, conf in json.loads(argv[0]):
        command = ["dags", "test", dag_id]
        if path:
            command += ["--dagfile-path", path]
        if conf:
            command += ["--conf", json.dumps(conf)]
        _say(f"{MARK} start {dag_id}")
        code = 0
        try:
            args = parser.parse_args(command)
            args.func(args)
        except SystemExit as exit_:  # "DagRun failed", or the parser refusing the command
            code = exit_.code if isinstance(exit_.code, int) and exit_.code else 1
            _say(str(exit_))
        except Exception:
            code = 1
            traceback.print_exc()
        _say(f"{MARK} end {dag_id} {code}")
        failures += code != 0
    return 1 if failures else 0


def _say(line: str) -> None:
    """A line on stdout, after everything the run wrote to either stream (the caller merges
    them), so that the markers bracket each run's output."""
    sys.stderr.flush()
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
