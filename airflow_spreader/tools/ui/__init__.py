"""The Backfills page in the Airflow UI: an Airflow 3 plugin (:mod:`.plugin`) serving :mod:`.api`."""
