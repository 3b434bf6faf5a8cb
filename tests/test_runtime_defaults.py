"""flows' runtime defaults, in a process as a user starts it (no CI variables)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

CHECK = """
import flows
from mlflow.telemetry.utils import is_telemetry_disabled
from prefect.settings import get_current_settings
print(is_telemetry_disabled(), get_current_settings().server.analytics_enabled)
"""


def test_importing_flows_turns_mlflows_and_prefects_telemetry_off():
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "PREFECT_SERVER_ANALYTICS_ENABLED")
           and not k.startswith("PYTEST")}
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]
