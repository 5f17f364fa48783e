"""The read model shared by the console and the Backfills page: where a backfill's facts are read, and the
status built from them. Neither renders anything; the CLI prints it, the page serves it as JSON."""
