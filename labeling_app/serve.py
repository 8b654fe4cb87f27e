"""The app as a subprocess, for the browser tests and `bench/app_load.py`: start, wait until it answers, stop.

    with serve.served(home, env) as url:   # python -m labeling_app on 127.0.0.1:<free port>
        ...                                 # its output: home/server.log

Loopback only, never another interface. Stopping is terminate, wait, then kill: uvicorn finishes
its requests on SIGTERM, and a server stuck in one is killed rather than left behind.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from rlhf import paths
from rlhf.errors import RlhfError


class AppDidNotStart(RlhfError):
    """The server exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(home: Path, env: dict | None = None, timeout: float = 120.0, stop_timeout: float = 15.0) -> Iterator[str]:
    """Run `python -m labeling_app` over the workspace in `env` (default: this process's) until the block ends.

    Yields the base url once `/api/openapi.json` answers; AppDidNotStart if the server exits first or
    `timeout` seconds pass. Its stdout and stderr go to `home/server.log`.
    """
    port = free_port()
    url, log_path = f"http://127.0.0.1:{port}", Path(home) / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "labeling_app", "--host", "127.0.0.1", "--port", str(port)],
                                env=dict(os.environ if env is None else env), cwd=paths.REPO_ROOT,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _answers(url + "/api/openapi.json"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    state = f"exited with {proc.returncode}" if proc.poll() is not None else f"no answer in {timeout:.0f} s"
                    raise AppDidNotStart(f"the app did not start ({state}); {log_path} ends:\n"
                                         f"{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
