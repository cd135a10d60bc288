"""Metric data: ingestion of files and SQL push-down (:mod:`core.data.ingestion`, reading and
validation in :mod:`core.data.reading`, the upsert writer in :mod:`core.data.writing`), the SQL
sources themselves (:mod:`core.data.metric_sources`) and the scheduled refresh
(:mod:`core.data.refresh`)."""
