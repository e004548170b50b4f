"""Benchmarks for codeindex (speed and memory targets live here, not in tests)."""
