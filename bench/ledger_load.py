"""The ledger through its service layer, no HTTP: worker processes, each with its own connection.

The mix per operation: 70% earn, 20% redeem, 10% hold then (in a second unit of work) capture
or void, each for a random member at a random tenant; the hot variant makes every earn at the
first tenant. Every posting carries an idempotency key, as the API's do. A throughput figure
counts committed units of work (postings) per second; a redemption the member cannot afford
rolls back and is counted as declined, not as a posting.
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import random
import time
import traceback

import sqlalchemy.orm as so

from bench.stats import summary

EARN, REDEEM, HOLD = 0.70, 0.90, 1.00  # cumulative shares of the mix
WARMUP_OPS = 60


def _fingerprint(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


class _Worker:
    def __init__(self, index: int, plan, mode: str, seed: int):
        import alliance.models  # noqa: F401  (every table the ledger's foreign keys name)
        import tenants.models  # noqa: F401
        from api.extensions import make_engine

        self.index, self.plan, self.mode = index, plan, mode
        self.rng = random.Random(seed * 1000 + index)
        self.engine = make_engine(plan.database_url)
        self.seq = 0
        self.tag = f"{mode}{seed}-{index}-{os.getpid()}"

    def close(self) -> None:
        self.engine.dispose()

    def _key(self) -> str:
        self.seq += 1
        return f"{self.tag}-{self.seq}"

    def unit(self, tenant_id: int, work):
        from tenants.isolation import tenant_scope
        from tenants.uow import run_unit

        session = so.Session(self.engine, expire_on_commit=False)
        try:
            with tenant_scope(session, tenant_id):
                return run_unit(session, work, retry_on_integrity=True)
        finally:
            session.close()

    def earn(self, tenant_id: int, member_id: int, points: int):
        from ledger import services as ledger

        key = self._key()
        plan = self.plan
        return self.unit(tenant_id, lambda s: ledger.earn(
            s, alliance_id=plan.alliance_id, tenant_id=tenant_id, member_id=member_id, points=points,
            expiry_months=plan.expiry_months, timezone=plan.timezone, reference=key,
            idempotency_key=key, fingerprint=_fingerprint("earn", member_id, points)))

    def redeem(self, tenant_id: int, member_id: int, points: int):
        from ledger import services as ledger

        key = self._key()
        return self.unit(tenant_id, lambda s: ledger.redeem(
            s, alliance_id=self.plan.alliance_id, tenant_id=tenant_id, member_id=member_id, points=points,
            reference=key, idempotency_key=key, fingerprint=_fingerprint("redeem", member_id, points)))

    def hold(self, tenant_id: int, member_id: int, points: int):
        from ledger import services as ledger

        key = self._key()
        return self.unit(tenant_id, lambda s: ledger.create_hold(
            s, alliance_id=self.plan.alliance_id, tenant_id=tenant_id, member_id=member_id, points=points,
            reference=key, idempotency_key=key, fingerprint=_fingerprint("hold", member_id, points)).id)

    def settle(self, tenant_id: int, hold_id, capture: int | None):
        from ledger import services as ledger

        key = self._key()
        if capture is None:
            return self.unit(tenant_id, lambda s: ledger.void_hold(
                s, tenant_id=tenant_id, hold_id=hold_id, idempotency_key=key,
                fingerprint=_fingerprint("void", hold_id)))
        return self.unit(tenant_id, lambda s: ledger.capture_hold(
            s, tenant_id=tenant_id, hold_id=hold_id, points=capture, idempotency_key=key,
            fingerprint=_fingerprint("capture", hold_id, capture)))

    def one(self, record) -> None:
        """Run one operation of the mix; ``record(kind, started, ok)`` is called per unit of work."""
        from ledger.errors import InsufficientPoints

        rng, tenants = self.rng, self.plan.tenant_ids
        member = rng.choice(self.plan.member_ids)
        tenant = rng.choice(tenants)
        draw = rng.random()
        started = time.perf_counter()
        try:
            if draw < EARN:
                self.earn(tenants[0] if self.mode == "hot" else tenant, member, rng.randint(10, 200))
                record("earn", started, True)
            elif draw < REDEEM:
                self.redeem(tenant, member, rng.randint(5, 60))
                record("redeem", started, True)
            else:
                points = rng.randint(5, 60)
                hold_id = self.hold(tenant, member, points)
                record("hold", started, True)
                started = time.perf_counter()
                capture = rng.randint(1, points) if rng.random() < 0.5 else None
                self.settle(tenant, hold_id, capture)
                record("capture" if capture else "void", started, True)
        except InsufficientPoints:
            record("declined", started, False)


def _worker_main(index: int, plan_path: str, phases: list[tuple[str, float]], warmup: float, warmup_ops: int,
                 seed: int, barrier, queue) -> None:
    from bench.seed import Plan

    out = {"error": None, "phases": []}
    worker = None
    try:
        plan = Plan.load(plan_path)
        worker = _Worker(index, plan, phases[0][0], seed)
        # Warm each process (compiled statements, prepared statements, caches) by count and by time:
        # sixteen processes on two cores get little CPU each in a time-only warm-up.
        warm_until, warm_ops = time.perf_counter() + warmup, 0
        while warm_ops < warmup_ops or time.perf_counter() < warm_until:
            worker.one(lambda *a: None)
            warm_ops += 1
        for mode, duration in phases:
            phase = {"ops": 0, "declined": 0, "latencies": [], "kinds": {}}
            out["phases"].append(phase)
            worker.mode = mode
            barrier.wait()
            deadline = time.perf_counter() + duration
            latencies, kinds = phase["latencies"], phase["kinds"]

            def record(kind, started, ok, deadline=deadline, phase=phase, latencies=latencies, kinds=kinds):
                finished = time.perf_counter()
                if finished > deadline:
                    return
                kinds[kind] = kinds.get(kind, 0) + 1
                if ok:
                    phase["ops"] += 1
                    latencies.append((finished - started) * 1000)
                else:
                    phase["declined"] += 1

            while time.perf_counter() < deadline:
                worker.one(record)
    except BaseException:  # report, never hang the parent
        out["error"] = traceback.format_exc(limit=8)
        barrier.abort()
    finally:
        if worker is not None:
            worker.close()
    queue.put(out)


def run(plan_path: str, *, workers: int, phases: list[tuple[str, float]], warmup: float = 1.0,
        warmup_ops: int = WARMUP_OPS, seed: int = 1, timeout: float = 300.0) -> list[dict]:
    """Run ``workers`` processes through ``phases`` ((mode, seconds), mode spread or hot); a summary per phase.

    The same warm processes run every phase back to back, all starting each phase together, so
    alternating spread and hot phases compare the two under the same conditions.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers + 1)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(i, plan_path, phases, warmup, warmup_ops, seed, barrier, queue),
                         daemon=True) for i in range(workers)]
    for proc in procs:
        proc.start()
    results = []
    try:
        for _mode, duration in phases:
            try:
                barrier.wait(timeout=timeout + duration)
            except Exception:  # a worker failed; collect its report below
                break
        results = [queue.get(timeout=timeout) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        queue.close()
        queue.join_thread()
    errors = [r["error"] for r in results if r["error"]]
    if errors:
        raise RuntimeError(f"ledger workers failed ({len(errors)}):\n{errors[0]}")
    summaries = []
    for i, (mode, duration) in enumerate(phases):
        parts = [r["phases"][i] for r in results]
        kinds: dict[str, int] = {}
        for part in parts:
            for kind, n in part["kinds"].items():
                kinds[kind] = kinds.get(kind, 0) + n
        one = summary([ms for part in parts for ms in part["latencies"]], sum(p["ops"] for p in parts), duration)
        one.update(mode=mode, workers=workers, declined=sum(p["declined"] for p in parts), kinds=kinds)
        summaries.append(one)
    return summaries
