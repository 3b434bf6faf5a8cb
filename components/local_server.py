"""Start and stop the local OpenAI-compatible model server (`transformers serve`)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.errors import BlackBoxError

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if the pipeline process dies, even by SIGKILL.
    # Only a libc call between fork and exec: safe while other threads hold locks.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def local_model_server(
    model_dir: Path, log_path: Path, *, cache_blocks: int = 256, block_size: int = 32,
    max_batch_tokens: int = 1024, startup_timeout: float = 300.0,
) -> Iterator[str]:
    """Serve ``model_dir`` with continuous batching on 127.0.0.1; yield its ``/v1`` base URL.

    The KV cache holds ``cache_blocks * block_size`` tokens: without a bound the server sizes
    it from the machine's memory (about 8 GB here).

    The server is stopped on exit, on error, and (Linux) if this process dies.

    Raises:
        BlackBoxError: if the server exits or does not answer within ``startup_timeout``.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cli = Path(sys.executable).with_name("transformers")
    command = [str(cli), "serve", str(model_dir), "--continuous-batching", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--cb-num-blocks", str(cache_blocks),
               "--cb-block-size", str(block_size), "--cb-max-batch-tokens", str(max_batch_tokens)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(base):
            if process.poll() is not None:
                raise BlackBoxError(f"local model server exited with {process.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise BlackBoxError(f"local model server not ready after {startup_timeout:.0f}s; see {log_path}")
            time.sleep(0.5)
        yield f"{base}/v1"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
