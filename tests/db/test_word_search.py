"""The registry's word search on SQLite through its FTS5 trigram table (migration 0018) gives
the answers of the plain scan (``lower(column) LIKE '%word%'`` over name, hypothesis and
learnings, the reference here: the same query with the table ignored), and the triggers keep
the table in step with inserts, updates and deletes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from db import repositories as repo
from db.models import Experiment

TEXTS = [  # (name, hypothesis, learnings)
    ("Checkout NEEDLE", "", ""),
    ("École pricing", "Café prices", ""),
    ("Quoted", 'users say "hi" back', ""),
    ("Promo", "50%_off banner", "a\\b path"),
    ("Plain", "nothing here", "needles in learnings"),
    ("Short", "ab", "xy"),
]
WORDS = ["needle", "NeEdLe", "ecole", "école", "cole", "café", "CAF", '"hi"', 'say "hi', "50%",
         "%_o", "a\\b", "ab", "x", "in lea", "nothing here", "zzz"]


def _names(session: Session, **listing: Any) -> list[str]:
    total, rows = repo.list_experiments(session, **listing)
    names = {e.id: e.name for e in session.query(Experiment)}
    assert total == len(rows)
    return [names[row.id] for row in rows]


@pytest.fixture
def sqlite_session(session: Session) -> Session:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("the FTS5 table is SQLite's (PostgreSQL: pg_trgm, 0009)")
    return session


def test_word_search_through_the_trigram_table_answers_as_the_scan(
        sqlite_session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    session = sqlite_session
    for name, hypothesis, learnings in TEXTS:
        session.add(Experiment(name=name, owner="o", hypothesis=hypothesis, learnings=learnings))
    session.flush()
    assert repo._word_index(session)
    indexed = {word: _names(session, search=word, sort="name", descending=False)
               for word in WORDS}
    monkeypatch.setattr(repo, "_word_index", lambda _session: False)
    scanned = {word: _names(session, search=word, sort="name", descending=False)
               for word in WORDS}
    assert indexed == scanned
    # the reference is not vacuous: words found, words not, one only in learnings
    assert scanned["needle"] == ["Checkout NEEDLE", "Plain"]
    assert scanned['"hi"'] == ["Quoted"] and scanned["%_o"] == ["Promo"]
    assert scanned["zzz"] == [] and scanned["cole"] == ["École pricing"]


def test_word_search_table_follows_inserts_updates_and_deletes(sqlite_session: Session) -> None:
    session = sqlite_session
    first = Experiment(name="Alpha", owner="o", hypothesis="raises conversion")
    session.add(first)
    session.flush()
    assert _names(session, search="conversion") == ["Alpha"]
    first.hypothesis = "lowers churn"
    first.learnings = "retention moved"
    session.flush()
    assert _names(session, search="conversion") == []
    assert _names(session, search="churn") == ["Alpha"]
    assert _names(session, search="retention") == ["Alpha"]
    first.owner = "someone else"  # not a searched column: the table is not rewritten
    session.flush()
    assert _names(session, search="churn") == ["Alpha"]
    session.delete(first)
    session.flush()
    assert _names(session, search="churn") == []
    rows = session.execute(text("SELECT count(*) FROM experiments_search WHERE "
                                "experiments_search MATCH '\"churn\"'")).scalar_one()
    assert rows == 0
