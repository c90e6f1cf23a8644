"""Every benchmark path runs for a moment, so none can rot (speed is never asserted here)."""
from __future__ import annotations

import json
import shutil

import pytest
import sqlalchemy as sa

from bench import report
from bench import run as bench_run

QUICK = ["--members", "40", "--seconds", "1", "--pass-seconds", "0.5", "--subject-passes", "1", "--warmup", "0", "--warmup-ops", "3", "--passes", "1",
         "--workers", "2", "--connections", "2", "--redis-url", ""]


def _results(tmp_path) -> dict:
    with open(tmp_path / "results" / "results.json", encoding="utf-8") as fh:
        return json.load(fh)


def _check_platform_parts(results: dict) -> None:
    rows = results["results"]
    for key in ("ledger_spread_2", "ledger_hot_2"):
        assert rows[key]["count"] > 0, rows[key]
        assert rows[key]["p50_ms"] > 0
        assert set(rows[key]["kinds"]) <= {"earn", "redeem", "hold", "capture", "void", "declined"}
    assert rows["ledger_hot_2"]["kinds"].get("earn", 0) > 0
    for key, status in (("api_earn", "201"), ("api_trivial", "200")):
        assert rows[key]["count"] > 0, rows[key]
        assert set(rows[key]["statuses"]) == {status}, rows[key]
    assert results["verify"]["ok"] is True, results["verify"]
    assert results["verify"]["postings"] > 40  # the opening earns and what the run posted


def test_the_ledger_and_api_benchmarks_run_on_sqlite_and_leave_clean_books(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nhand-written analysis\n\n" + report.START + "\nold\n" + report.END +
                    "\n\n## Kept below\n", encoding="utf-8")
    db = tmp_path / "bench.db"
    code = bench_run.main([*QUICK, "--database-url", f"sqlite:///{db}", "--skip", "ceiling",
                           "--results-dir", str(tmp_path / "results"), "--docs", str(docs)])
    assert code == 0
    _check_platform_parts(_results(tmp_path))
    text = docs.read_text(encoding="utf-8")
    assert "hand-written analysis" in text and "## Kept below" in text and "\nold\n" not in text
    assert "| Ledger mix, three tenants (service layer) | 2 workers |" in text
    assert "| passes /s |" in text
    assert "`flask ledger verify` after the run: **clean**" in text


def test_the_whole_benchmark_runs_against_postgresql_with_its_pgbench_ceiling(pg_url, tmp_path):
    if shutil.which("pgbench") is None:
        pytest.skip("needs pgbench (PostgreSQL client tools)")
    url = sa.make_url(pg_url)
    code = bench_run.main([*QUICK, "--scale", "1", "--pg-host", url.host or "127.0.0.1",
                           "--pg-port", str(url.port or 5432), "--pg-user", url.username or "postgres",
                           "--results-dir", str(tmp_path / "results"), "--docs", ""])
    assert code == 0
    results = _results(tmp_path)
    _check_platform_parts(results)
    ceiling = results["results"]["pgbench_2"]
    assert ceiling["throughput"] > 0 and ceiling["p50_ms"] > 0 and ceiling["median_of"] == 1
    assert "PostgreSQL" in results["facts"]


def test_percentiles_and_the_median_pass():
    from bench.stats import median_pass, percentile

    assert percentile([], 0.5) is None
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert percentile(list(range(1, 101)), 0.99) == 99
    passes = [{"throughput": t, "p50_ms": t / 10, "p99_ms": t} for t in (30.0, 10.0, 20.0)]
    assert median_pass(passes)["throughput"] == 20.0


def test_goals_compare_each_figure_with_its_ceiling():
    rows = {"pgbench_4": {"throughput": 1000.0}, "ledger_spread_4": {"throughput": 950.0},
            "ledger_hot_4": {"throughput": 500.0}}
    met = {text: (round(ratio, 2) if ratio is not None else None, ok) for text, ratio, _, ok in report.goals(rows)}
    assert met["Ledger at 4 workers >= 0.9 x TPC-B-like (4 clients)"] == (0.95, True)
    assert met["Hot tenant >= 0.9 x the spread mix (4 workers)"] == (0.53, False)
    assert met["API earn >= 0.5 x TPC-B-like (16)"] == (None, None)
