"""Load generator comparing Haven with the reference registry over the OCI distribution API.

Run `python -m benchmarks.run --help`; docs/benchmarks.md explains the scenarios.
"""
