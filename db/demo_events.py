"""The demo's raw events: an ``events`` table in the app's own database that the SQL push-down
demo (:mod:`core.demo_data`, "Search ranking v2") aggregates with its metric source. Created on
first use; not part of the app's schema (no model, no migration).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Date, Float, Integer, MetaData, String, Table, func, select
from sqlalchemy.orm import Session

_meta = MetaData()
EVENTS = Table(
    "events",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("unit_id", String(40), nullable=False, index=True),
    Column("event_date", Date, nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("value", Float),
    Column("experiment", String(200)),
    Column("variant", String(80)),
)
"""Demo raw events: exposures carry experiment, variant and the page load time (ms); product
events (sessions, add-to-cart) carry only a unit."""


_NAMES = ("unit_id", "event_date", "event_type", "value", "experiment", "variant")


def insert_events(session: Session, *, rows: list[tuple[Any, ...]]) -> None:
    """Insert raw events, each ``(unit_id, event_date, event_type, value, experiment, variant)``,
    creating the table first if it is missing."""
    bind = session.connection()
    EVENTS.create(bind, checkfirst=True)
    sqlite = bind.dialect.name == "sqlite"
    names = _NAMES
    if sqlite:  # the driver's own executemany: SQLAlchemy's per-row processing is the slow part
        sql = f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' * 6)})"
        bind.exec_driver_sql(sql, [(u, d.isoformat(), *rest) for u, d, *rest in rows])
    else:  # insertmanyvalues: 1,000 rows per INSERT
        bind.execute(EVENTS.insert(), [dict(zip(names, r, strict=True)) for r in rows])


def has_events(session: Session, *, experiment: str) -> bool:
    """Whether the table exists and holds events of the experiment named ``experiment``."""
    bind = session.connection()
    if not bind.dialect.has_table(bind, "events"):
        return False
    count = bind.execute(
        select(func.count()).select_from(EVENTS).where(EVENTS.c.experiment == experiment)
    ).scalar()
    return bool(count)
