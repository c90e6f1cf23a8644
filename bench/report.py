"""The results table, the goals, and docs/benchmarks.md (only the part between the markers is rewritten)."""
from __future__ import annotations

import os

START = "<!-- bench:results:start (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:results:end -->"

#: (row key, label, concurrency label, ceiling key or None)
ROWS = [
    ("pgbench_4", "PostgreSQL ceiling: pgbench TPC-B-like", "4 clients", None),
    ("pgbench_16", "PostgreSQL ceiling: pgbench TPC-B-like", "16 clients", None),
    ("ledger_spread_4", "Ledger mix, three tenants (service layer)", "4 workers", "pgbench_4"),
    ("ledger_spread_16", "Ledger mix, three tenants (service layer)", "16 workers", "pgbench_16"),
    ("ledger_hot_4", "Ledger mix, every earn at one tenant", "4 workers", "ledger_spread_4"),
    ("ledger_hot_16", "Ledger mix, every earn at one tenant", "16 workers", "ledger_spread_16"),
    ("api_trivial", "Framework ceiling: GET /healthz under gunicorn", "16 connections", None),
    ("api_earn", "API: OAuth + idempotent earn under gunicorn", "16 connections", "pgbench_16"),
    ("api_earn_vs_trivial", "API: OAuth + idempotent earn under gunicorn", "16 connections", "api_trivial"),
]

GOALS = [
    ("ledger_spread_4", "pgbench_4", 0.9, "Ledger at 4 workers >= 0.9 x TPC-B-like (4 clients)"),
    ("ledger_spread_16", "pgbench_16", 0.9, "Ledger at 16 workers >= 0.9 x TPC-B-like (16 clients)"),
    ("ledger_hot_4", "ledger_spread_4", 0.9, "Hot tenant >= 0.9 x the spread mix (4 workers)"),
    ("ledger_hot_16", "ledger_spread_16", 0.9, "Hot tenant >= 0.9 x the spread mix (16 workers)"),
    ("api_earn", "pgbench_16", 0.5, "API earn >= 0.5 x TPC-B-like (16)"),
    ("api_earn", "api_trivial", 0.4, "API earn >= 0.4 x the trivial endpoint"),
]

_NAMES = {"pgbench_4": "TPC-B 4", "pgbench_16": "TPC-B 16", "ledger_spread_4": "spread 4",
          "ledger_spread_16": "spread 16", "api_trivial": "trivial"}


def _get(results: dict, key: str) -> dict | None:
    return results.get("api_earn" if key == "api_earn_vs_trivial" else key)


def _num(value, digits=0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(a, b) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}"


def table(results: dict) -> str:
    lines = ["| benchmark | concurrency | throughput /s | p50 ms | p99 ms | ceiling | x throughput | x p50 | x p99 |",
             "|---|---|--:|--:|--:|---|--:|--:|--:|"]
    for key, label, conc, ceiling_key in ROWS:
        row = _get(results, key)
        if row is None:
            continue
        ceiling = results.get(ceiling_key) if ceiling_key else None
        cells = [label, conc, _num(row["throughput"]), _num(row["p50_ms"], 2), _num(row["p99_ms"], 2)]
        if ceiling:
            cells += [_NAMES[ceiling_key], _ratio(row["throughput"], ceiling["throughput"]),
                      _ratio(row["p50_ms"], ceiling["p50_ms"]), _ratio(row["p99_ms"], ceiling["p99_ms"])]
        else:
            cells += ["(ceiling)", "1.00", "1.00", "1.00"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(results: dict) -> list[tuple[str, float | None, float, bool | None]]:
    out = []
    for subject, ceiling, target, text in GOALS:
        a, b = results.get(subject), results.get(ceiling)
        ratio = a["throughput"] / b["throughput"] if a and b and b["throughput"] else None
        out.append((text, ratio, target, None if ratio is None else ratio >= target))
    return out


def goals_markdown(results: dict) -> str:
    lines = ["| goal | measured | met |", "|---|--:|---|"]
    for text, ratio, _target, met in goals(results):
        lines.append(f"| {text} | {'–' if ratio is None else f'{ratio:.2f}'} | "
                     f"{'–' if met is None else ('yes' if met else 'no')} |")
    return "\n".join(lines)


def results_markdown(results: dict, facts: dict, verify: dict, notes: list[str]) -> str:
    fact_lines = "\n".join(f"- {name}: {value}" for name, value in facts.items())
    extra = "\n".join(f"- {n}" for n in notes)
    return f"""{START}

### Last run: {facts.get('finished', '')}

{table(results)}

Ratios: throughput ÷ the ceiling's throughput (higher is better); p50/p99 ÷ the ceiling's (lower is
better). Hot-tenant rows are measured against the spread mix at the same concurrency.

{goals_markdown(results)}

`flask ledger verify` after the run: **{'clean' if verify.get('ok') else 'FAULTS: ' + str(len(verify.get('faults', [])))}**
({verify.get('postings', '?')} transactions in the books).

Machine and server:

{fact_lines}
{extra}

{END}"""


def write_docs(path: str, block: str, template: str) -> None:
    """Replace the results block in ``path`` (creating the file from ``template`` when missing)."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else template
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
