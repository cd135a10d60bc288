"""Use cases that span data, analysis and reports, above all three: the scheduled refresh
(ingest, recompute, report: :mod:`.refresh`, called by the DAG, the CLI and the API) and the two
loads an editor starts, each followed by a stored results snapshot (:mod:`.loads`, called by the
Results page and the API's data routes)."""
