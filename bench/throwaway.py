"""A throwaway PostgreSQL database for a bench run (``--postgres ADMIN_URL``): created with a
unique name on that server, dropped (``WITH (FORCE)``) when the run ends, however it ends."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def postgres_database(admin_url: str, label: str) -> Iterator[str]:
    """The URL of an empty database ``experimentos_bench_<label>_<pid>_<time>`` on the server
    of ``admin_url``, dropped on exit."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"experimentos_bench_{label}_{os.getpid()}_{int(time.time())}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
