"""An asynchronous HTTP/1.1 load generator, run in its own process: ``python -m bench.loadgen ...``.

Each of ``--connections`` tasks keeps one keep-alive connection (reconnecting when the server
closes it) and sends requests back to back. ``earn`` takes one OAuth2 client-credentials token
per tenant through ``/oauth/token`` first, then posts an idempotent earn for a random member at
a random tenant, each with a new Idempotency-Key; ``trivial`` gets ``/healthz``. Only requests
that start after the warm-up and finish before the end are counted. It prints one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import time
import uuid
from urllib.parse import urlsplit

from bench.stats import summary


class Connection:
    """One HTTP/1.1 connection with just enough of the protocol for the benchmark."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def close(self) -> None:
        if self.writer is not None:
            writer, self.reader, self.writer = self.writer, None, None
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.connects += 1
            head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
            head += [f"{k}: {v}" for k, v in headers.items()]
            try:
                self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
                await self.writer.drain()
                return await self._response()
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                await self.close()  # a kept-alive connection the server closed meanwhile: one retry
                if attempt == 2:
                    raise ConnectionError(f"request failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, bytes]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            body = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


async def take_tokens(host: str, port: int, clients: list[dict]) -> dict[int, str]:
    """One client-credentials token per tenant, through the real token endpoint."""
    conn = Connection(host, port)
    tokens = {}
    try:
        for client in clients:
            auth = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
            status, body = await conn.request(
                "POST", "/oauth/token", {"Authorization": f"Basic {auth}",
                                         "Content-Type": "application/x-www-form-urlencoded"},
                b"grant_type=client_credentials&scope=points%3Aearn")
            if status != 200:
                raise RuntimeError(f"token endpoint answered {status}: {body[:300]!r}")
            tokens[client["tenant_id"]] = json.loads(body)["access_token"]
    finally:
        await conn.close()
    return tokens


async def drive(url: str, *, scenario: str, connections: int, duration: float, warmup: float,
                plan: dict | None = None, seed: int = 1) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    tokens = await take_tokens(host, port, plan["clients"]) if scenario == "earn" else {}
    rng = random.Random(seed)
    run_tag = uuid.uuid4().hex[:10]
    loop = time.perf_counter
    begin = loop()
    measure_from, deadline = begin + warmup, begin + warmup + duration
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    conns = [Connection(host, port) for _ in range(connections)]

    def next_request(seq: int, worker: int):
        if scenario == "trivial":
            return "GET", "/healthz", {}, b""
        tenant = rng.choice(plan["tenant_ids"])
        member = rng.choice(plan["pairwise"][str(tenant)])
        body = json.dumps({"points": rng.randint(10, 200), "reference": f"bench-{run_tag}-{worker}-{seq}"}).encode()
        return "POST", f"/api/v1/members/{member}/earnings", {
            "Authorization": f"Bearer {tokens[tenant]}", "Content-Type": "application/json",
            "Idempotency-Key": f"bench-{run_tag}-{worker}-{seq}"}, body

    async def worker(index: int, conn: Connection):
        seq = 0
        while True:
            started = loop()
            if started >= deadline:
                return
            seq += 1
            method, path, headers, body = next_request(seq, index)
            try:
                status, payload = await conn.request(method, path, headers, body)
            except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
                errors.append(repr(exc))
                await asyncio.sleep(0.01)
                continue
            finished = loop()
            if started >= measure_from and finished <= deadline:
                statuses[status] = statuses.get(status, 0) + 1
                if status < 300:
                    latencies.append((finished - started) * 1000)
                elif len(errors) < 20:
                    errors.append(f"{status}: {payload[:200]!r}")

    try:
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(conns)))
    finally:
        for conn in conns:
            await conn.close()
    out = summary(latencies, len(latencies), duration)
    out.update(scenario=scenario, connections=connections, statuses={str(k): v for k, v in statuses.items()},
               failures=sum(v for k, v in statuses.items() if k >= 300), errors=errors[:20],
               reconnects=sum(c.connects for c in conns))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--scenario", choices=["earn", "trivial"], required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--plan", help="the seeded plan (JSON), for earn")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    plan = None
    if args.plan:
        with open(args.plan, encoding="utf-8") as fh:
            plan = json.load(fh)
    result = asyncio.run(drive(args.url, scenario=args.scenario, connections=args.connections,
                               duration=args.duration, warmup=args.warmup, plan=plan, seed=args.seed))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
