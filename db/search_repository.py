"""Full-text search over experiments: name, hypothesis, learnings and metric names, ranked.

PostgreSQL ranks in the database (``to_tsvector('english', …) @@ to_tsquery`` with
``ts_rank``); SQLite ranks the same documents in an in-memory FTS5 table (Porter stemmer,
``bm25``), built per query: the experiments searched are a few hundred at most, so nothing is
kept in step by triggers. Both stem English ("learnings" finds "learned"), match a word as a
prefix ("check" finds "checkout") and weigh where it is found: name first, then hypothesis and
learnings, then metric names. Words are ORed, so a question ("what did we learn about checkout")
finds what any of its significant words finds, best first; English stop words are dropped here
(PostgreSQL's list, which is Snowball's), so both engines see the same words.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, literal, literal_column, select
from sqlalchemy.orm import Session

from db.models import Experiment, ExperimentMetric, Metric

_STOP_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can did do does doing don down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just
me more most my myself no nor not now of off on once only or other our ours ourselves out over
own s same she should so some such t than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with you your yours yourself yourselves learn learned learnt learning learnings
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
"""Snowball's English stop words (PostgreSQL's ``english`` configuration drops the same), plus
"learn" and its forms: a question to the knowledge base asks what was learned, so the word says
nothing about which experiment."""
_WORD = re.compile(r"[^\W_]+")
_ENGLISH: ColumnElement[Any] = literal_column("'english'::regconfig")
MAX_WORDS = 20
WEIGHTS = {"name": 1.0, "hypothesis": 0.4, "learnings": 0.4, "metrics": 0.2}
"""Where a word is found: PostgreSQL's A, B, B and C weights (``ts_rank``'s defaults), the same
ratios as FTS5 ``bm25`` column weights."""


@dataclass(frozen=True)
class SearchHit:
    experiment_id: int
    rank: float
    """Higher is more relevant; comparable within one search only."""


def search_words(text: str) -> list[str]:
    """The significant words of a query: lower-case letters and digits, stop words dropped,
    each once, at most :data:`MAX_WORDS`."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
    return list(dict.fromkeys(words))[:MAX_WORDS]


def _metric_names() -> ColumnElement[str]:
    """The experiment's primary, guardrail and secondary metric names, separated by spaces."""
    primary = (select(Metric.name).where(Metric.id == Experiment.primary_metric_id)
               .scalar_subquery())
    linked = (select(func.string_agg(Metric.name, literal(" ")))
              .join_from(ExperimentMetric, Metric, Metric.id == ExperimentMetric.metric_id)
              .where(ExperimentMetric.experiment_id == Experiment.id).scalar_subquery())
    return func.concat_ws(" ", primary, linked)


def search_experiments(
    session: Session, *, query: str, status: str | None = None
) -> list[SearchHit]:
    """Experiments (of ``status``, if given) matching any significant word of ``query`` in their
    name, hypothesis, learnings or metric names, most relevant first (ties: newest first).
    Empty when the query has no significant word."""
    words = search_words(query)
    if not words:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _postgres(session, words, status)
    return _fts5(session, words, status)


def _postgres(session: Session, words: list[str], status: str | None) -> list[SearchHit]:
    def part(text: Any, weight: str) -> ColumnElement[Any]:
        # '_' separates words (checkout_conversion), as it does for FTS5's tokenizer
        words_of = func.replace(func.coalesce(text, ""), "_", " ")
        return func.setweight(func.to_tsvector(_ENGLISH, words_of), weight)

    document = (part(Experiment.name, "A").op("||")(part(Experiment.hypothesis, "B"))
                .op("||")(part(Experiment.learnings, "B"))
                .op("||")(part(_metric_names(), "C")))
    # words are letters and digits only (search_words), so the query text has no syntax of its own
    tsquery = func.to_tsquery(_ENGLISH, " | ".join(f"{w}:*" for w in words))
    rank = func.ts_rank(document, tsquery).label("rank")
    stmt = select(Experiment.id, rank).where(document.op("@@")(tsquery))
    if status:
        stmt = stmt.where(Experiment.status == status)
    rows = session.execute(stmt.order_by(rank.desc(), Experiment.id.desc())).all()
    return [SearchHit(int(exp_id), float(score)) for exp_id, score in rows]


def _fts5(session: Session, words: list[str], status: str | None) -> list[SearchHit]:
    primary = Metric.__table__.alias("primary_metric")
    stmt = select(Experiment.id, Experiment.name, Experiment.hypothesis, Experiment.learnings,
                  primary.c.name).outerjoin(primary, primary.c.id == Experiment.primary_metric_id)
    if status:
        stmt = stmt.where(Experiment.status == status)
    docs = session.execute(stmt).all()
    if not docs:
        return []
    links: dict[int, list[str]] = {}
    for exp_id, name in session.execute(
        select(ExperimentMetric.experiment_id, Metric.name)
        .join_from(ExperimentMetric, Metric, Metric.id == ExperimentMetric.metric_id)
        .where(ExperimentMetric.experiment_id.in_([d[0] for d in docs]))
    ):
        links.setdefault(exp_id, []).append(name)
    with closing(sqlite3.connect(":memory:")) as con:
        con.execute("CREATE VIRTUAL TABLE docs USING fts5(name, hypothesis, learnings, metrics, "
                    "tokenize='porter unicode61')")
        con.executemany(
            "INSERT INTO docs (rowid, name, hypothesis, learnings, metrics) VALUES (?, ?, ?, ?, ?)",
            [(exp_id, name, hypothesis or "", learnings or "",
              " ".join([p for p in (primary_name,) if p] + links.get(exp_id, [])))
             for exp_id, name, hypothesis, learnings, primary_name in docs])
        match = " OR ".join(f'"{w}"*' for w in words)
        weights = ", ".join(str(WEIGHTS[c]) for c in ("name", "hypothesis", "learnings",
                                                       "metrics"))
        rows = con.execute(
            f"SELECT rowid, -bm25(docs, {weights}) AS score FROM docs WHERE docs MATCH ? "
            "ORDER BY score DESC, rowid DESC", (match,)).fetchall()
    return [SearchHit(int(exp_id), float(score)) for exp_id, score in rows]
