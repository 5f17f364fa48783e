"""Benchmarks of airflow-spreader: planner scaling, tracker throughput, end to end under a real
scheduler against a plain thread-pool script, and the scheduler's CPU cost.

Run them all with ``python -m bench.run`` (``--quick`` for a smoke run); see bench/README.md.
"""
