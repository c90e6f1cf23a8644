"""The results table, the goals, and docs/benchmarks.md (only the part between the markers is rewritten)."""
from __future__ import annotations

import os

START = "<!-- bench:results:start (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:results:end -->"



def _rows(results: dict) -> list[tuple[str, str, str, str | None]]:
    """(row key, label, concurrency, ceiling key or None) for what was measured, ceilings first."""
    def counts(prefix):
        return sorted(int(k.rsplit("_", 1)[1]) for k in results if k.startswith(prefix))

    rows = [(f"pgbench_{n}", "PostgreSQL ceiling: pgbench TPC-B-like", f"{n} clients", None)
            for n in counts("pgbench_")]
    rows += [(f"ledger_spread_{n}", "Ledger mix, three tenants (service layer)", f"{n} workers", f"pgbench_{n}")
             for n in counts("ledger_spread_")]
    rows += [(f"ledger_hot_{n}", "Ledger mix, every earn at one tenant", f"{n} workers", f"ledger_spread_{n}")
             for n in counts("ledger_hot_")]
    api = results.get("api_earn") or results.get("api_trivial")
    if api:
        conns = api["connections"]
        rows += [("api_trivial", "Framework ceiling: GET /healthz under gunicorn", f"{conns} connections", None),
                 ("api_earn", "API: OAuth + idempotent earn under gunicorn", f"{conns} connections",
                  f"pgbench_{conns}"),
                 ("api_earn_vs_trivial", "API: OAuth + idempotent earn under gunicorn", f"{conns} connections",
                  "api_trivial")]
    return rows


GOALS = [
    ("ledger_spread_4", "pgbench_4", 0.9, "Ledger at 4 workers >= 0.9 x TPC-B-like (4 clients)"),
    ("ledger_spread_16", "pgbench_16", 0.9, "Ledger at 16 workers >= 0.9 x TPC-B-like (16 clients)"),
    ("ledger_hot_4", "ledger_spread_4", 0.9, "Hot tenant >= 0.9 x the spread mix (4 workers)"),
    ("ledger_hot_16", "ledger_spread_16", 0.9, "Hot tenant >= 0.9 x the spread mix (16 workers)"),
    ("api_earn", "pgbench_16", 0.5, "API earn >= 0.5 x TPC-B-like (16)"),
    ("api_earn", "api_trivial", 0.4, "API earn >= 0.4 x the trivial endpoint"),
]

def _name(key: str) -> str:
    if key == "api_trivial":
        return "trivial"
    kind, n = key.rsplit("_", 1)
    return {"pgbench": "TPC-B", "ledger_spread": "spread"}[kind] + f" {n}"


def _get(results: dict, key: str) -> dict | None:
    return results.get("api_earn" if key == "api_earn_vs_trivial" else key)


def _num(value, digits=0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(a, b) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}"


def table(results: dict) -> str:
    lines = ["| benchmark | concurrency | throughput /s | p50 ms | p99 ms | ceiling | x throughput | x p50 | x p99 "
             "| passes /s |",
             "|---|---|--:|--:|--:|---|--:|--:|--:|---|"]
    for key, label, conc, ceiling_key in _rows(results):
        row = _get(results, key)
        if row is None:
            continue
        ceiling = results.get(ceiling_key) if ceiling_key else None
        cells = [label, conc, _num(row["throughput"]), _num(row["p50_ms"], 2), _num(row["p99_ms"], 2)]
        if ceiling:
            cells += [_name(ceiling_key), _ratio(row["throughput"], ceiling["throughput"]),
                      _ratio(row["p50_ms"], ceiling["p50_ms"]), _ratio(row["p99_ms"], ceiling["p99_ms"])]
        elif ceiling_key:
            cells += [f"{_name(ceiling_key)} (not measured)", "–", "–", "–"]
        else:
            cells += ["(ceiling)", "1.00", "1.00", "1.00"]
        cells.append(" / ".join(f"{p:,.0f}" for p in row.get("passes", [])) or "–")
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
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    else:
        text = template
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
