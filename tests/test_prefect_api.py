"""`python -m flows.prefect_api CMD`: one temporary Prefect server for every process of CMD."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
# Each child prints the API it was given and whether that API answers.
PROBE = ("import json, os, urllib.request; url = os.environ['PREFECT_API_URL']; "
         "print(json.dumps([url, urllib.request.urlopen(url + '/health', timeout=10).status]))")


def _wrapped(env: dict[str, str]) -> list[list]:
    probe = f"{sys.executable} -c \"{PROBE}\""
    done = subprocess.run([sys.executable, "-m", "flows.prefect_api", "sh", "-c", f"{probe} && {probe}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]


def test_every_child_shares_one_temporary_server_stopped_at_the_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")  # a new database: the slow first start
    (url, status), again = _wrapped(env)
    assert status == 200 and again == [url, 200]
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/health", timeout=5)


def test_a_configured_api_is_passed_through_and_the_exit_code_kept(tmp_path):
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "flows.prefect_api", "sh", "-c", 'echo "$PREFECT_API_URL"; exit 7'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 7 and done.stdout.strip() == "http://127.0.0.1:9/api"
