"""Metric data: ingestion of files and SQL push-down (:mod:`core.data.ingestion`, reading and
validation in :mod:`core.data.reading`, the upsert writer in :mod:`core.data.writing`) and the SQL
sources themselves (:mod:`core.data.metric_sources`). Nothing here computes results: loading
data and then refreshing them is :mod:`core.workflows`."""
