"""The three demo partners' systems, calling a running server's partner API over HTTP.

Used by ``flask demo replay-cdnow``: each partner takes its own client-credentials token, and
every write carries an Idempotency-Key derived from the purchase, so a second run posts nothing
twice. Rate limiting (429) and passing server trouble (5xx, connection errors) are retried.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode

import httpx

from alliance import cdnow

RETRIES = 8


class ReplayError(RuntimeError):
    """The server refused a call for a reason retrying cannot mend."""


def check_server(base_url: str) -> None:
    """Refuse at once when no ready server answers at ``base_url``."""
    try:
        r = httpx.get(base_url.rstrip("/") + "/readyz", timeout=httpx.Timeout(10, connect=3))
    except httpx.HTTPError as exc:
        raise ReplayError(f"no server answers at {base_url} ({type(exc).__name__})") from exc
    if r.status_code != 200:
        raise ReplayError(f"the server at {base_url} is not ready: {r.status_code} {r.text[:200]}")


class HttpPartners:
    """The scenario's steps as partner API calls (an :class:`alliance.demo.Adapter`)."""

    def __init__(self, base_url: str, credentials: dict[str, tuple[str, str]], *, connections: int = 8,
                 expire: Callable[[dt.date], None], on_purchase: Callable[[], None] | None = None,
                 transport: httpx.BaseTransport | None = None):
        self.credentials = credentials
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=httpx.Timeout(30, connect=5),
                                 transport=transport,
                                 limits=httpx.Limits(max_connections=connections + 2,
                                                     max_keepalive_connections=connections + 2))
        self.tokens: dict[str, str] = {}
        self._token_lock = threading.Lock()
        self._expire, self._on_purchase = expire, on_purchase
        self._count_lock = threading.Lock()
        self.requests = 0

    def close(self) -> None:
        self.http.close()

    # -- plumbing

    def _token(self, code: str, *, renew: bool = False) -> str:
        with self._token_lock:
            if renew or code not in self.tokens:
                client_id, secret = self.credentials[code]
                try:
                    r = self.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                       auth=(client_id, secret))
                except httpx.HTTPError as exc:
                    raise ReplayError(f"token for {code}: {type(exc).__name__}") from exc
                if r.status_code != 200:
                    raise ReplayError(f"token for {code}: {r.status_code} {r.text}")
                self.tokens[code] = r.json()["access_token"]
            return self.tokens[code]

    def call(self, partner: cdnow.Partner, method: str, path: str, body: dict | None = None,
             key: str | None = None, ok: tuple[int, ...] = (200, 201)) -> httpx.Response:
        """Send one request as ``partner``; retry what a well-behaved client retries."""
        renewed = False
        for attempt in range(RETRIES):
            headers = {"Authorization": f"Bearer {self._token(partner.code)}"}
            if key is not None:
                headers["Idempotency-Key"] = key
            try:
                r = self.http.request(method, f"/api/v1{path}", json=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= 3 and isinstance(exc, httpx.ConnectError):
                    raise ReplayError(f"{method} {path}: the server stopped answering") from exc
                time.sleep(min(2.0, 0.05 * 2 ** attempt))
                continue
            with self._count_lock:  # += from several threads is not atomic
                self.requests += 1
            if r.status_code in ok:
                return r
            code = _code(r)
            if r.status_code == 401 and not renewed:
                self._token(partner.code, renew=True)
                renewed = True
                continue
            if r.status_code == 429:
                time.sleep(float(r.headers.get("Retry-After", "1")) + random.random() / 10)
                continue
            if r.status_code >= 500 or code == "idempotency_key_in_progress":
                time.sleep(min(2.0, 0.05 * 2 ** attempt))
                continue
            return r
        raise ReplayError(f"{method} {path}: no answer after {RETRIES} tries")

    def _expect(self, r: httpx.Response, what: str) -> dict:
        if r.status_code not in (200, 201):
            raise ReplayError(f"{what}: {r.status_code} {r.text}")
        return r.json()

    # -- the scenario's steps

    def enrol(self, partner, p):
        body = {"email": cdnow.email_for(p.customer), "external_ref": cdnow.external_ref_for(p.customer),
                "name": cdnow.name_for(p.customer),
                "consent": {"purposes": ["loyalty", "profile"], "channel": "pos", "terms_version": "1997-01",
                            "captured_at": p.occurred_at.isoformat()}}
        r = self.call(partner, "POST", "/members", body, key=f"enrol-{p.customer}-{partner.code}")
        return self._expect(r, f"enrol {p.customer} at {partner.code}")["id"]

    def balance(self, partner, member_id, as_of: dt.datetime) -> dict:
        path = f"/members/{member_id}/balance?{urlencode({'as_of': as_of.isoformat()})}"
        return self._expect(self.call(partner, "GET", path), f"balance {member_id}")

    def usable(self, partner, member_id, at):
        return self.balance(partner, member_id, at)["available"]

    def redeem(self, partner, member_id, p):
        body = {"points": cdnow.REDEEM_POINTS, "reference": f"redeem-{p.key}", "occurred_at": p.occurred_at.isoformat(),
                "description": "points toward a purchase"}
        self._expect(self.call(partner, "POST", f"/members/{member_id}/redemptions", body, key=f"redeem-{p.key}"),
                     f"redeem {p.key}")

    def purchase(self, partner, member_id, p):
        amount = {"value": str(p.value), "currency": "CNY"}
        common = {"reference": f"order-{p.key}", "occurred_at": p.occurred_at.isoformat()}
        r = None
        if p.value > 0:
            r = self.call(partner, "POST", f"/members/{member_id}/earnings",
                          {**common, "amount": amount, "description": f"{p.cds} item(s)"}, key=f"order-{p.key}")
        if r is None or _code(r) == "amount_earns_no_points":
            r = self.call(partner, "POST", f"/members/{member_id}/visits", {**common, "amount": amount},
                          key=f"visit-{p.key}")
        self._expect(r, f"purchase {p.key}")
        if self._on_purchase is not None:
            self._on_purchase()

    def expire(self, month_end):
        self._expire(month_end)


def _code(r: httpx.Response) -> str | None:
    if r.headers.get("content-type", "").startswith("application/problem+json"):
        try:
            return r.json().get("code")
        except ValueError:
            return None
    return None


class FileJournal:
    """Redemption decisions and finished months, one JSON line each, flushed as written."""

    @staticmethod
    def check(path: str, *, run: dict, fresh: bool = False) -> None:
        """Refuse a journal of another run before anything is created."""
        if fresh or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        header = json.loads(first) if first.strip() else {}
        if header.get("run") != run:
            raise ReplayError(f"{path} belongs to another run ({header.get('run')}); replay that run again, "
                              "or give this one a new --alliance")

    def __init__(self, path: str, *, run: dict, fresh: bool = False):
        self.path, self.run = path, run
        self.decisions: dict[str, bool] = {}
        self.months: set[dt.date] = set()
        self._lock = threading.Lock()
        if fresh and os.path.exists(path):
            os.remove(path)
        if os.path.exists(path):
            self.check(path, run=run)
            with open(path, encoding="utf-8") as fh:
                lines = [json.loads(line) for line in fh if line.strip()]
            for line in lines[1:]:
                if "decision" in line:
                    self.decisions[line["decision"]] = line["redeem"]
                elif "month" in line:
                    self.months.add(dt.date.fromisoformat(line["month"]))
        else:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._write({"run": run})

    def _write(self, obj: dict) -> None:
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(obj) + "\n")
            fh.flush()

    def decision(self, key):
        return self.decisions.get(key)

    def decide(self, key, redeem):
        self.decisions[key] = redeem
        self._write({"decision": key, "redeem": redeem})

    def month_done(self, month_end):
        return month_end in self.months

    def finish_month(self, month_end):
        self.months.add(month_end)
        self._write({"month": month_end.isoformat()})
