"""Smoke tests of the benchmarks in bench/: each runs in --quick mode so it cannot rot."""
