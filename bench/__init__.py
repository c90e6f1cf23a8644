"""Benchmarks: the ledger and the partner API measured against PostgreSQL's own ceiling (docs/benchmarks.md)."""
