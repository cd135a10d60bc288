"""The knowledge base: completed experiments, their lifts raw and shrunk, programme impact."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Reader, SessionDep
from api.errors import responses
from api.schemas import KnowledgeOut, SafeText
from core.backlog import knowledge

router = APIRouter(prefix="/knowledge", tags=["backlog"])


@router.get("", response_model=KnowledgeOut, responses=responses(422))
def knowledge_base(
    session: SessionDep,
    _actor: Reader,
    search: Annotated[SafeText | None, Query(max_length=200)] = None,
    owner: Annotated[SafeText | None, Query(max_length=120)] = None,
    tag: Annotated[SafeText | None, Query(max_length=80)] = None,
) -> KnowledgeOut:
    """Completed experiments (searched, filtered), each primary-metric lift raw and shrunk by
    empirical Bayes across the whole portfolio, and the shipped ones' programme impact."""
    return KnowledgeOut.of(knowledge.knowledge_base(session, search=search, owner=owner, tag=tag))
