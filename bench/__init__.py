"""Benchmarks for crm-gateway (run from the project root, e.g. python -m bench.caldav)."""
