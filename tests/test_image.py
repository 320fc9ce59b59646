"""The image runs every DAG: a rehearsal of the Dockerfile, without Docker.

No Docker engine runs here, so the test does what ``docker compose up --build`` would. It
reads the Dockerfile stage that compose builds for the DAG processor and lays that stage's
files out in a temporary root as its instructions do: COPY from the build context through
``.dockerignore``, ENV, WORKDIR, and each RUN. For a package install the checkout's
virtualenv synced from the same lock stands in (the dbt one is linked at the image's path);
a program the image itself holds, its dbt, runs for real, so the manifest is compiled
there as the build compiles it. Then it applies compose's mounts and, in a process with
compose's environment, the image's working directory and its Python path (only the
runtime lock's distributions importable, the product from the laid-out tree), imports
every DAG through Airflow's DagBag and renders a dbt task's command.

What the rehearsal takes from outside the Dockerfile is the base image's own layout
(``BASE_*``), and the checkout's ``.venv`` and ``.venv-dbt`` (``make setup``).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from analytics_hub.settings import project_root
from analytics_hub.sources import MODULES

ROOT = project_root()
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# What the official image sets up before our instructions: the working directory, Airflow's
# home and that of its `airflow` user.
BASE_IMAGE = "apache/airflow"
BASE_WORKDIR = "/opt/airflow"
BASE_ENV = {"AIRFLOW_HOME": "/opt/airflow", "HOME": "/home/airflow"}
# Instructions that put no file in the image and set nothing a DAG sees.
WITHOUT_FILES = {"USER", "LABEL", "EXPOSE", "CMD", "ENTRYPOINT", "HEALTHCHECK", "STOPSIGNAL"}
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# Compose: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, $VAR.
INTERPOLATION = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?")


# --- The Dockerfile and .dockerignore, read ----------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def read_stages(text: str) -> list[Stage]:
    """The Dockerfile's stages, each a list of (KEYWORD, arguments), continuations joined."""
    stages: list[Stage] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines inside a continuation too
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        keyword, _, args = (logical + line).partition(" ")
        logical = ""
        if keyword.upper() == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.IGNORECASE)
            assert match, f"FROM {args}"
            stages.append(Stage(base=match[1], name=match[2]))
        else:
            stages[-1].instructions.append((keyword.upper(), args.strip()))
    return stages


def stage_chain(stages: list[Stage], target: str) -> list[Stage]:
    """``target`` and the stages it is built on, the first one's base an external image."""
    by_name = {stage.name: stage for stage in stages if stage.name}
    assert target in by_name, f"the Dockerfile has no stage {target!r} (compose builds it)"
    chain = [by_name[target]]
    while chain[0].base in by_name:
        chain.insert(0, by_name[chain[0].base])
    return chain


def glob_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regex, as Docker's patternmatcher compiles it."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out.append(".*" if i == len(pattern) else "(.*/)?")
            continue
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i)
            out.append("[" + pattern[i + 1 : end].replace("!", "^", 1) + "]")
            i = end
        elif char == "\\":
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def read_dockerignore(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception ``!``, pattern) per line."""
    patterns = []
    for raw in path.read_text().splitlines() if path.is_file() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        cleaned = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        patterns.append((negated, re.compile(glob_regex(cleaned))))
    return patterns


def ignored(rel: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the build context leaves ``rel`` out: the last pattern matching it or one of
    its parent folders decides (Docker's ``MatchesOrParentMatches``)."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    matched = False
    for negated, regex in patterns:
        if negated == matched and any(regex.fullmatch(c) for c in candidates):
            matched = not negated
    return matched


# --- The image, laid out -------------------------------------------------------------------


class Image:
    """A stage's files under ``root``, with its environment, working directory and the
    Python it installs (the runtime lock's distributions, editable products' paths)."""

    def __init__(self, root: Path, context: Path, base: str) -> None:
        assert base.startswith(f"{BASE_IMAGE}:"), f"the rehearsal knows no base image {base}"
        python = re.search(r"-python(\d+)\.(\d+)$", base)
        assert python and sys.version_info[:2] == (int(python[1]), int(python[2])), (
            f"the rehearsal's Python {sys.version_info[:2]} is not that of {base}"
        )
        self.root, self.context = root, context
        self.workdir = BASE_WORKDIR
        self.env = dict(BASE_ENV)
        self.ignore = read_dockerignore(context / ".dockerignore")
        self.python_path: list[str] = []
        self.distributions: set[str] = set()
        self.path(self.workdir).mkdir(parents=True, exist_ok=True)
        self.path(self.env["HOME"]).mkdir(parents=True, exist_ok=True)

    def path(self, container_path: str) -> Path:
        """Where a path of the container (absolute or from WORKDIR) is in the laid-out tree."""
        return self.root / PurePosixPath(self.workdir, container_path).relative_to("/")

    def expand(self, text: str) -> str:
        return VARIABLE.sub(lambda m: self.env.get(m[1] or m[2], ""), text)

    def host_env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with the container's absolute paths moved into the laid-out tree."""
        return {k: str(self.path(v)) if v.startswith("/") else v for k, v in env.items()}

    def process_env(self, *extra: dict[str, str]) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        for part in (self.env, *extra):
            env |= self.host_env(part)
        return env

    def apply(self, keyword: str, args: str) -> None:
        if keyword == "COPY":
            self.copy(args)
        elif keyword == "ENV":
            words = shlex.split(args)
            pairs = (
                [w.partition("=")[::2] for w in words]
                if "=" in words[0]
                else [(words[0], args.partition(" ")[2].strip())]
            )
            self.env |= {key: self.expand(value) for key, value in pairs}
        elif keyword == "WORKDIR":
            self.workdir = str(PurePosixPath(self.workdir, self.expand(args)))
            self.path(self.workdir).mkdir(parents=True, exist_ok=True)
        elif keyword == "RUN":
            for step in args.split("&&"):
                self.run(step.strip())
        else:
            assert keyword in WITHOUT_FILES, f"the rehearsal does not know {keyword} {args}"

    def copy(self, args: str) -> None:
        words = shlex.split(args)
        assert not any(w.startswith("--from") for w in words), f"COPY {args}: not rehearsed"
        *sources, dest = [self.expand(w) for w in words if not w.startswith("--")]
        for source in sources:
            rel = os.path.normpath(source)
            origin = self.context / rel
            assert origin.exists() and not ignored(rel, self.ignore), (
                f"COPY {source}: not in the build context (.dockerignore)"
            )
            if origin.is_file():
                into = dest.endswith("/") or len(sources) > 1
                target = self.path(dest) / origin.name if into else self.path(dest)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
                continue
            for folder, dirs, files in os.walk(origin):
                base = Path(folder).relative_to(self.context)
                dirs[:] = [d for d in dirs if not ignored((base / d).as_posix(), self.ignore)]
                for name in files:
                    if ignored((base / name).as_posix(), self.ignore):
                        continue
                    target = self.path(dest) / Path(folder, name).relative_to(origin)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(Path(folder, name), target, follow_symlinks=False)

    def run(self, step: str) -> None:
        words = shlex.split(step)
        while words and re.fullmatch(r"\w+=.*", words[0]):
            words.pop(0)  # NAME=value prefixes: the shell's business when the step runs
        program, *rest = words
        if program == "mkdir":
            for folder in (w for w in rest if not w.startswith("-")):
                self.path(self.expand(folder)).mkdir(parents=True, exist_ok=True)
        elif program in {"chown", "chmod"}:
            pass  # ownership and modes are not rehearsed
        elif program == "pip" and "-r" in rest:
            self.install_lock(self.expand(rest[rest.index("-r") + 1]))
        elif program == "pip" and "-e" in rest:
            assert "--no-deps" in rest, f"{step}: an editable install must not resolve anew"
            self.install_editable(self.expand(rest[rest.index("-e") + 1]))
        elif program == "uv" and rest[:1] == ["venv"]:
            pass  # the venv is the one `uv pip sync` fills, linked there
        elif program == "uv" and rest[:2] == ["pip", "sync"]:
            python = self.expand(rest[rest.index("--python") + 1])
            self.link_synced_venv(PurePosixPath(python).parent.parent, self.expand(rest[-1]))
        elif self.path(self.expand(program)).is_file():
            self.execute(step)
        else:
            raise AssertionError(f"the rehearsal does not know the RUN step {step!r}")

    def install_lock(self, lock: str) -> None:
        """The image's Python is the checkout's ``.venv`` reduced to this lock: every pin
        of it must be installed there at its version."""
        wrong = []
        for line in self.path(lock).read_text().splitlines():
            pin = PIN.fullmatch(line.strip())
            if not pin or (pin[3] and not Marker(pin[3]).evaluate()):
                continue
            name = canonicalize_name(pin[1])
            self.distributions.add(name)
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                installed = None
            if installed != pin[2]:
                wrong.append(f"{name}=={pin[2]} (installed: {installed})")
        assert not wrong, f".venv is not {lock}: run `make setup`: {wrong}"

    def install_editable(self, project: str) -> None:
        config = tomllib.loads(self.path(f"{project}/pyproject.toml").read_text())
        found = config.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
        self.python_path += [str(PurePosixPath(project, w)) for w in found.get("where", ["."])]
        self.distributions.add(canonicalize_name(config["project"]["name"]))

    def link_synced_venv(self, venv: PurePosixPath, lock: str) -> None:
        """The checkout's virtualenv that scripts/bootstrap synced from the same lock (its
        stamp names the lock's hash), linked at the image's path."""
        lock_sum = hashlib.sha256(self.path(lock).read_bytes()).hexdigest()
        for candidate in sorted(ROOT.glob(".venv*")):
            stamp = candidate / ".hub-sync.sha256"
            if stamp.is_file() and stamp.read_text().split()[:1] == [lock_sum]:
                self.path(str(venv)).parent.mkdir(parents=True, exist_ok=True)
                self.path(str(venv)).symlink_to(candidate, target_is_directory=True)
                return
        raise AssertionError(f"no virtualenv of the checkout is synced with {lock}: make setup")

    def execute(self, step: str) -> None:
        """A program the image holds, run as the build runs it (container paths written
        literally in the step are moved into the tree)."""
        tops = "|".join(re.escape(p.name) for p in self.root.iterdir())
        command = re.sub(rf"(?<![\w.$/-])/(?=(?:{tops})(?:/|\b))", f"{self.root}/", step)
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.path(self.workdir),
            env=self.process_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"RUN {step}:\n{done.stdout}\n{done.stderr}"

    def mount(self, volume: str | dict[str, Any]) -> None:
        """A compose volume over the tree. A bind mount shows the host folder as a fresh
        clone has it (git's tracked and unignored files: what `make setup` built on this
        host is not on a server); a named volume starts as the image's files."""
        if isinstance(volume, dict):
            kind, source, target = volume.get("type"), volume.get("source", ""), volume["target"]
        else:
            source, target = volume.split(":")[:2]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind != "bind":
            return
        tree = self.path(target)
        if tree.is_symlink() or tree.is_file():
            tree.unlink()
        elif tree.exists():
            shutil.rmtree(tree)
        tree.mkdir(parents=True)
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", source],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for rel in filter(None, listed.split("\0")):
            if (ROOT / rel).is_file():  # not deleted from the work tree
                target = tree / (ROOT / rel).relative_to(ROOT / source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, target)


def dev_harness_packages() -> set[str]:
    """The dev distribution's top-level packages (dev/pyproject.toml), which only the
    Dockerfile's ``dev`` stage may hold."""
    config = tomllib.loads((ROOT / "dev" / "pyproject.toml").read_text())
    return {p.rstrip("*.") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]}


def dev_harness_in(root: Path) -> list[str]:
    names = dev_harness_packages()
    return sorted(
        str(Path(folder, d).relative_to(root))
        for folder, dirs, _ in os.walk(root)  # not into linked virtualenvs
        for d in dirs
        if d in names
    )


def not_in_the_image(distributions: set[str]) -> list[str]:
    """Top-level modules of this virtualenv that no distribution of the image provides."""
    return sorted(
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in distributions for d in dists)
    )


# --- Compose ---------------------------------------------------------------------------------


def example_dotenv() -> dict[str, str]:
    """``.env.example`` filled in as scripts/gen-env fills it: every empty value a secret."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            if value.strip():
                values[name] = value.strip()
            elif "FERNET" in name:
                values[name] = base64.urlsafe_b64encode(os.urandom(32)).decode()
            else:
                values[name] = f"rehearsal-{name.lower()}"
    return values


def interpolate(text: str, values: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match[1]:
            return "$"
        name, operator, argument = match[2] or match[5], match[3] or "", match[4] or ""
        value = values.get(name)
        missing = not value if operator.startswith(":") else value is None
        if missing and operator.endswith("?"):
            raise AssertionError(f"compose requires {name}: {argument}")
        return argument if missing and operator.endswith("-") else (value or "")

    return INTERPOLATION.sub(substitute, text)


def environment(service: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): interpolate(str(v), values) for k, v in env.items()}


# --- In the image ------------------------------------------------------------------------------

# Run by the checkout's Python with the image's environment, from the image's working
# directory; writes what it found as JSON to spec["result"].
IN_THE_IMAGE = r"""
import importlib.abc, json, sys
from pathlib import Path

spec = json.loads(sys.argv[1])
absent = frozenset(spec["absent"])


class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in absent:
            raise ModuleNotFoundError(f"No module named {name!r} in the image", name=name)
        return None


sys.meta_path.insert(0, NotInTheImage())
checkout = spec["checkout"] + "/"
sys.path[:] = spec["python_path"] + [
    p for p in sys.path if not p.startswith(checkout) or p.startswith(sys.prefix + "/")
]

import analytics_hub
from airflow.configuration import conf
from airflow.dag_processing.dagbag import DagBag
from cosmos.operators.local import DbtLocalBaseOperator

bag = DagBag(dag_folder=conf.get("core", "dags_folder"))
result = {
    "analytics_hub": analytics_hub.__file__,
    "dags_folder": conf.get("core", "dags_folder"),
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "dags": {dag_id: dag.fileloc for dag_id, dag in bag.dags.items()},
    "dbt_tasks": [],
}
for dag in bag.dags.values():
    for task in dag.tasks:
        if isinstance(task, DbtLocalBaseOperator) and task.base_cmd == ["build"]:
            command, _ = task.build_cmd(context={}, cmd_flags=task.add_cmd_flags())
            result["dbt_tasks"].append({
                "dag_id": dag.dag_id,
                "task_id": task.task_id,
                "command": [str(word) for word in command],
                "project_dir": str(task.project_dir),
            })
Path(spec["result"]).write_text(json.dumps(result))
"""


@dataclass
class Rehearsal:
    image: Image
    dev_harness_in_image: list[str]
    dev_harness_in_container: list[str]
    absent: list[str]
    found: dict[str, Any]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Rehearsal:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    services = compose["services"]
    (dag_processor,) = (s for s in services.values() if s.get("command") == ["dag-processor"])
    same_image = [s for s in services.values() if s.get("build") == dag_processor["build"]]
    for service in same_image:  # one rehearsal stands for every Airflow component
        assert service.get("environment") == dag_processor.get("environment")
        assert service.get("volumes") == dag_processor.get("volumes")

    chain = stage_chain(read_stages(DOCKERFILE.read_text()), dag_processor["build"]["target"])
    image = Image(
        tmp_path_factory.mktemp("image"), ROOT / dag_processor["build"]["context"], chain[0].base
    )
    for stage in chain:
        for keyword, args in stage.instructions:
            image.apply(keyword, args)
    in_image = dev_harness_in(image.root)
    for volume in dag_processor.get("volumes") or []:
        image.mount(volume)

    absent = not_in_the_image(image.distributions)
    result = image.root / "rehearsal.json"
    spec = {
        "absent": absent,
        "checkout": str(ROOT),
        "python_path": [str(image.path(p)) for p in image.python_path],
        "result": str(result),
    }
    done = subprocess.run(
        [sys.executable, "-c", IN_THE_IMAGE, json.dumps(spec)],
        cwd=image.path(image.workdir),
        env=image.process_env(environment(dag_processor, example_dotenv())),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    found = json.loads(result.read_text())
    return Rehearsal(image, in_image, dev_harness_in(image.root), absent, found)


def test_the_build_context_leaves_out_what_the_host_built() -> None:
    patterns = read_dockerignore(ROOT / ".dockerignore")
    for rel in (
        ".env",
        ".venv/bin/python",
        ".venv-dbt/bin/dbt",
        ".local/lake/x.parquet",
        "dbt_project/target/manifest.json",
        "dbt_project/logs/dbt.log",
        "include/analytics_hub/__pycache__/settings.cpython-311.pyc",
        "include/llm_analytics_hub.egg-info/PKG-INFO",
    ):
        assert ignored(rel, patterns), f"the build context ships the host's {rel}"
    for rel in (
        "dags/transform.py",
        "dbt_project/dbt_project.yml",
        "include/analytics_hub/settings.py",
    ):
        assert not ignored(rel, patterns), rel


def test_the_product_image_holds_no_dev_harness(rehearsal: Rehearsal) -> None:
    assert dev_harness_packages() <= set(rehearsal.absent)
    assert rehearsal.dev_harness_in_image == []
    assert rehearsal.dev_harness_in_container == []


def test_every_dag_imports_in_the_image(rehearsal: Rehearsal) -> None:
    found, image = rehearsal.found, rehearsal.image
    dags_folder = image.path(f"{image.env['AIRFLOW_HOME']}/dags")
    assert Path(found["analytics_hub"]).is_relative_to(image.root), found["analytics_hub"]
    assert Path(found["dags_folder"]) == dags_folder
    assert not found["import_errors"], "\n".join(
        f"{file}:\n{error[-800:]}" for file, error in found["import_errors"].items()
    )
    assert {Path(fileloc).parent for fileloc in found["dags"].values()} == {dags_folder}
    dag_ids = set(found["dags"])
    for stem in (path.stem for path in dags_folder.glob("*.py")):
        assert stem in dag_ids or any(i.startswith(f"{stem}_") for i in dag_ids), stem
    assert {f"ingest_{module}" for module in MODULES} <= dag_ids


def test_a_dbt_task_runs_the_images_dbt_on_the_images_project(rehearsal: Rehearsal) -> None:
    found, image = rehearsal.found, rehearsal.image
    assert found["dbt_tasks"], "no cosmos `dbt build` task: the transform DAG rendered no model"
    task = found["dbt_tasks"][0]
    executable = image.path(image.env["HUB_DBT_EXECUTABLE"])
    project = image.path(image.env["HUB_DBT_PROJECT_DIR"])
    assert task["command"][0] == str(executable)
    assert task["command"][1:2] == ["build"] and "--select" in task["command"], task["command"]
    assert Path(task["project_dir"]) == project
    assert os.access(executable, os.X_OK), f"{executable}: no dbt in the image"
    assert (project / "target" / "manifest.json").is_file()
