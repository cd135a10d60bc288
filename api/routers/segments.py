"""Segment drill-down (exploratory): results per dimension value, computed on demand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ExperimentId, Reader, SessionDep
from api.errors import responses
from api.schemas import SafeText, SegmentBreakdownOut, SegmentScanOut, SegmentsOut
from core.analysis import results, segments
from core.registry import Day

AsOf = Annotated[
    Day | None,
    Query(description="Last day of data used (YYYY-MM-DD): from the experiment's start to "
          "today (UTC); 422 outside that range. Default: all data."),
]
TopN = Annotated[
    int, Query(ge=1, le=100, description="Values taken on their own per dimension; the rest "
               "are pooled as `(other)`.")
]

router = APIRouter(prefix="/experiments/{experiment_id}/segments", tags=["results"])


@router.get("", response_model=SegmentsOut, responses=responses(404, 422))
def segment_results(
    experiment_id: ExperimentId,
    session: SessionDep,
    _actor: Reader,
    dimension: Annotated[
        SafeText | None,
        Query(max_length=100, description="Only this dimension (e.g. `country`); 404 when "
              "the experiment's data does not carry it. Default: every dimension."),
    ] = None,
    top_n: TopN = segments.TOP_N,
    as_of: AsOf = None,
) -> SegmentsOut:
    """Per dimension the experiment's data carries (country, platform, ...): its top-N slices
    plus `(other)`, each with its own SRM check, and per slice × metric × treatment the
    difference and lift with their intervals and p-values, corrected across the dimension's
    slices (the experiment's Holm or BH). Exploratory: never stored, never read by the verdict,
    so no ship decision is made from a slice. Each slice's SRM is its own; the whole
    experiment's is in the results snapshot (the app hides the slices while it fails)."""
    results.check_as_of(session, experiment_id=experiment_id, as_of=as_of)
    found = segments.segment_results(session, experiment_id=experiment_id, dimension=dimension,
                                     as_of=as_of, top_n=top_n)
    return SegmentsOut(
        experiment_id=experiment_id,
        exploratory=segments.EXPLORATORY,
        breakdowns=[SegmentBreakdownOut.model_validate(b) for b in found],
    )


@router.get("/scan", response_model=SegmentScanOut, responses=responses(404, 422))
def segment_scan(
    experiment_id: ExperimentId,
    session: SessionDep,
    _actor: Reader,
    top_n: TopN = segments.TOP_N,
    as_of: AsOf = None,
) -> SegmentScanOut:
    """Automatic segment scan: each slice of each dimension (top-N values plus `(other)`)
    against the rest of the experiment, per metric and treatment: is the effect inside the
    slice different from the effect over every other unit? Holm-corrected across every slice
    of every dimension; `worth_a_look` below alpha. Worth a look, never a ship decision:
    never stored, never read by the verdict. Slices failing their SRM check are left out."""
    results.check_as_of(session, experiment_id=experiment_id, as_of=as_of)
    found = segments.segment_scan(session, experiment_id=experiment_id, as_of=as_of,
                                  top_n=top_n)
    return SegmentScanOut(experiment_id=experiment_id, alpha=found.alpha,
                          correction=found.correction, tested=found.tested, note=found.note,
                          findings=[f for f in found.findings])  # type: ignore[misc]
