"""The partner API under gunicorn, as in production, driven by the load generator in its own process."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The production command line (README: ``gunicorn -w 4 wsgi:app``) with the worker class spelled out.
GUNICORN_WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "4"))
GUNICORN_CLASS = os.environ.get("BENCH_GUNICORN_CLASS", "sync")
GUNICORN_THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", "1"))


def server_settings() -> dict:
    return {"workers": GUNICORN_WORKERS, "worker_class": GUNICORN_CLASS, "threads": GUNICORN_THREADS}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def gunicorn(database_url: str, *, log_path: str, redis_url: str = "", workers: int | None = None):
    """Serve ``wsgi:app`` on a free port with the production settings; yield its base URL."""
    settings = server_settings()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "SEED_DEMO": "0", "SECRET_KEY": "bench-secret",
           "LOG_LEVEL": "INFO", "REDIS_URL": redis_url,
           # One client drives thousands of requests a second: lift the per-client limit, keep the limiter.
           "RATELIMIT_DEFAULT": "100000000 per minute"}
    if not redis_url:
        env.pop("REDIS_URL")
    cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers or settings["workers"]), "--worker-class", settings["worker_class"],
           "--threads", str(settings["threads"]), "--graceful-timeout", "5", "wsgi:app"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start (exit {proc.poll()}); see {log_path}")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def load(url: str, *, scenario: str, connections: int, duration: float, warmup: float,
         plan_path: str | None = None, seed: int = 1) -> dict:
    """Run the load generator in its own process and return its JSON summary."""
    cmd = [sys.executable, "-m", "bench.loadgen", "--url", url, "--scenario", scenario,
           "--connections", str(connections), "--duration", str(duration), "--warmup", str(warmup),
           "--seed", str(seed)]
    if plan_path:
        cmd += ["--plan", plan_path]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=duration + warmup + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)
