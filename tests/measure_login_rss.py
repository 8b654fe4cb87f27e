"""Memory and latency of a served app under a burst of bad logins (issue 13: 32 parallel bad logins took the server
from ~300 MB to 1.3 GB and slowed every annotator).

    .venv/bin/python tests/measure_login_rss.py [--tree DIR] [--n 32]

Serves `python -m labeling_app` from `--tree` (default: this checkout; give an exported older commit to measure
"before") over a fresh workspace whose user has a real (default-profile) argon2 hash, logs one annotator in, then
fires N parallel wrong-password logins at `/api/login` while that annotator keeps calling `/api/me`. Prints the
server's resident memory (VmRSS from /proc) before and at its peak, and the annotator's latency during the burst.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PASSWORD = "correct horse battery"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def get(url: str, headers: dict) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=120) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", default=str(Path(__file__).resolve().parent.parent), help="checkout to serve")
    ap.add_argument("--n", type=int, default=32, help="parallel bad logins")
    ap.add_argument("--distinct", action="store_true", help="each bad login names another (unknown) account")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="login-rss-"))
    env = {k: v for k, v in os.environ.items() if k not in ("RLHF_PASSWORD_HASH", "RLHF_DATABASE_URL")}
    env.update(RLHF_HOME=str(home / "ws"), PYTHONPATH=args.tree)
    add = ("from rlhf.data import accounts\nfrom rlhf.data.store import session_scope\n"
           "with session_scope() as db:\n"
           f"    accounts.create_user(db, 'ana', 'annotator', {PASSWORD!r})\n"
           f"    accounts.create_user(db, 'bob', 'annotator', {PASSWORD!r})\n")
    subprocess.run([sys.executable, "-c", add], cwd=args.tree, env=env, check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "labeling_app", "--port", str(port)], cwd=args.tree, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not _up(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"server did not start; see {home / 'server.log'}")
            time.sleep(0.3)
        status, body = post(url + "/api/login", {"name": "bob", "password": PASSWORD})
        assert status == 200, body
        bob = {"Authorization": f"Bearer {body['token']}"}
        get(url + "/api/me", bob)
        time.sleep(1.0)
        before = rss_mb(proc.pid)
        peak, done, lat = [before], threading.Event(), []

        def sample():
            while not done.is_set():
                peak.append(rss_mb(proc.pid))
                time.sleep(0.01)

        def annotator():
            while not done.is_set():
                t = time.perf_counter()
                get(url + "/api/me", bob)
                lat.append(time.perf_counter() - t)
                time.sleep(0.05)

        threads = [threading.Thread(target=sample), threading.Thread(target=annotator)]
        for t in threads:
            t.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.n) as pool:
            codes = list(pool.map(lambda i: post(url + "/api/login", {"name": f"guess{i}" if args.distinct else "ana", "password": f"wrong-{i}"})[0],
                                  range(args.n)))
        burst = time.perf_counter() - t0
        done.set()
        for t in threads:
            t.join()
        print(f"tree {args.tree}: {args.n} parallel bad logins in {burst:.1f} s, answers "
              f"{ {c: codes.count(c) for c in sorted(set(codes))} }")
        print(f"server RSS: {before:.0f} MB before, {max(peak):.0f} MB at peak (+{max(peak) - before:.0f} MB)")
        if lat:
            print(f"annotator GET /api/me during the burst: {len(lat)} calls, median {statistics.median(lat) * 1000:.0f} ms, "
                  f"max {max(lat) * 1000:.0f} ms")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/openapi.json", timeout=2):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
