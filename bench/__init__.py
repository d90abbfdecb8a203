"""Benchmarks, run from a checkout (not shipped in the wheel): ``python -m bench.daemon``, ``bench.codec``, ``bench.scan``."""
