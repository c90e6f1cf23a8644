"""The PostgreSQL ceiling: pgbench's built-in TPC-B-like script on the same server, in the same run."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile

from bench.stats import median_pass, summary

SCALE = 10
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)


def pgbench_path() -> str | None:
    return shutil.which("pgbench") or (os.path.exists("/usr/bin/pgbench") and "/usr/bin/pgbench") or None


def _conn_args(host: str, port: int, user: str) -> list[str]:
    return ["-h", host, "-p", str(port), "-U", user]


def initialise(dbname: str, *, host: str, port: int, user: str, scale: int = SCALE) -> None:
    """``pgbench -i -s SCALE`` (tables, data, vacuum, primary keys)."""
    subprocess.run([pgbench_path(), "-i", "-s", str(scale), "-q", *_conn_args(host, port, user), dbname],
                   check=True, capture_output=True, text=True)


def run_pass(dbname: str, *, clients: int, seconds: int, host: str, port: int, user: str) -> dict:
    """One TPC-B-like pass; latencies come from pgbench's per-transaction log."""
    jobs = min(clients, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="pgbench-") as tmp:
        prefix = os.path.join(tmp, "tx")
        proc = subprocess.run(
            [pgbench_path(), "-c", str(clients), "-j", str(jobs), "-T", str(seconds), "-l", f"--log-prefix={prefix}",
             *_conn_args(host, port, user), dbname],
            check=True, capture_output=True, text=True)
        tps = float(_TPS.search(proc.stdout).group(1))
        latencies = []
        for path in glob.glob(prefix + ".*"):
            with open(path, encoding="ascii") as fh:
                for line in fh:
                    fields = line.split()
                    if len(fields) >= 3 and fields[2].isdigit():  # "skipped"/"failed" rows carry no time
                        latencies.append(int(fields[2]) / 1000)
    failed = _FAILED.search(proc.stdout)
    out = summary(latencies, len(latencies), seconds)
    out.update(throughput=tps, clients=clients, failed=int(failed.group(1)) if failed else 0)
    return out


def measure(dbname: str, *, clients: list[int], passes: int, seconds: int, warmup_seconds: int,
            host: str, port: int, user: str, log=print) -> dict[int, dict]:
    """Warm up once (thrown away), then ``passes`` passes per client count, interleaved; the median pass wins."""
    warm = run_pass(dbname, clients=max(clients), seconds=warmup_seconds, host=host, port=port, user=user)
    log(f"  pgbench warm-up ({max(clients)} clients, {warmup_seconds}s, thrown away): {warm['throughput']:.0f} tps")
    results: dict[int, list[dict]] = {c: [] for c in clients}
    for i in range(passes):
        for c in clients:
            one = run_pass(dbname, clients=c, seconds=seconds, host=host, port=port, user=user)
            results[c].append(one)
            log(f"  pgbench pass {i + 1}/{passes}, {c} clients: {one['throughput']:.0f} tps, "
                f"p50 {one['p50_ms']:.2f} ms, p99 {one['p99_ms']:.2f} ms")
    return {c: median_pass(p) for c, p in results.items()}
