"""Analysis: from stored daily statistics to results snapshots (:mod:`.results`, their shape in
:mod:`.snapshot`), the one place that decides (:mod:`.verdict`), what the Results page reads
(:mod:`.views`) and the portfolio overview (:mod:`.portfolio`). Every number comes from
:mod:`core.stats`."""
