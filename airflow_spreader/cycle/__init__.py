"""The decisions of a cycle, in plain functions without Airflow: what the plan claims, what it hands the
batches, and what the chain task does next. The operators are glue around them (hook, one call, result)."""
