"""The harness of the tests, the demo and the benchmarks: real Airflow components, a REST client, an embedded Redis.

Not part of the wheel (only ``airflow_spreader`` is installed); import it from the repo root.
"""
