"""The numpy core never imports the app or tracking layers (Hydra, OmegaConf, MLflow)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

CORE = ["activations", "losses", "targets", "initializers", "layers", "models", "optimizers",
        "schedules", "train", "gradcheck", "registry"]
# Core modules that may not exist yet (written in parallel) or are added later.
OPTIONAL = ["datasets", "convolutions", "metrics", "diagnostics"]
FORBIDDEN = ["hydra", "omegaconf", "mlflow"]


def test_core_imports_no_hydra_omegaconf_mlflow():
    modules = CORE + [m for m in OPTIONAL if importlib.util.find_spec(f"nets.{m}") is not None]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module('nets.' + m)\n"
        "from nets.registry import _load_all\n"
        "_load_all()\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    leaked = json.loads(out.stdout.strip().splitlines()[-1])
    assert leaked == [], f"core modules {modules} pulled in: {leaked}"
