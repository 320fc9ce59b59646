"""Simulators of the six LLM DevOps modules the hub pulls from (see docs/wire-contract.md).

- `SimulatorConfig`: seed, volume, chaos, tokens; converts to and from CLI args.
- `SimulatorProcess`: runs `python -m simulators` in a child process (`with ... as sim: sim.url`).
- `create_app`: the FastAPI app, for in-process tests.
- `compute_truth`: the ground truth of a window, without HTTP.
- `compute_records`: the valid records of a window with their canonical values.
"""

from simulators.app import create_app
from simulators.config import DEFAULT_VOLUME, MODULES, ChaosRates, SimulatorConfig
from simulators.process import SimulatorProcess
from simulators.truth import compute_records, compute_truth

__all__ = [
    "DEFAULT_VOLUME",
    "MODULES",
    "ChaosRates",
    "SimulatorConfig",
    "SimulatorProcess",
    "compute_records",
    "compute_truth",
    "create_app",
]
