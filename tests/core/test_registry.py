"""Registry service: lifecycle rules, plan freeze, audit, bad input, roles — on SQLite and PG."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import catalogue, registry
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleViolation
from db.models import AuditEntry, Experiment, ExperimentMetric, ExperimentTag, Variant
from tests.conftest import ADMIN, EDITOR, VIEWER


@pytest.fixture
def metrics(session: Session) -> list[str]:
    for name, kind in [("conversion", "binomial"), ("revenue", "mean"), ("latency", "mean")]:
        catalogue.create_metric(session, data={"name": name, "kind": kind}, actor=ADMIN)
    return ["conversion", "revenue", "latency"]


def draft(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Green button",
        "owner": "maria",
        "hypothesis": "A green button lifts conversion.",
        "target_segment": "web",
        "primary_metric": "conversion",
        "guardrail_metrics": ["latency"],
        "secondary_metrics": ["revenue"],
        "variants": [{"name": "control", "weight": 0.5}, {"name": "green", "weight": 0.5}],
        "planned_sample_size": 1000,
        "mde": 0.05,
        "tags": ["ui"],
    }
    data.update(overrides)
    return data


def row_counts(session: Session) -> tuple[int, int, int, int]:
    return tuple(  # type: ignore[return-value]
        session.scalar(select(func.count()).select_from(model))
        for model in (Experiment, Variant, ExperimentMetric, AuditEntry)
    )


def launch(session: Session, exp: registry.ExperimentView) -> registry.ExperimentView:
    return registry.transition_experiment(
        session, experiment_id=exp.id, to_status="running", expected_version=exp.version,
        actor=EDITOR, on=date(2026, 1, 5),
    )


# ----------------------------------------------------------------------------- create


def test_registry_create_stores_fields_and_audits(session: Session, metrics: list[str]) -> None:
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    assert exp.status == "proposed" and exp.version == 1
    assert exp.primary_metric == "conversion"
    assert exp.guardrail_metrics == ["latency"] and exp.secondary_metrics == ["revenue"]
    assert [v.name for v in exp.variants] == ["control", "green"]
    assert exp.control == "control"
    history = registry.audit_history(session, experiment_id=exp.id)
    assert [h.action for h in history] == ["create"]
    assert history[0].actor == EDITOR.name
    assert history[0].changes["name"] == [None, "Green button"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"variants": [{"name": "control", "weight": 0.6}, {"name": "b", "weight": 0.6}]},
         "sum to 1"),
        ({"variants": [{"name": "control", "weight": 0.999}]}, "at least two variants"),
        ({"variants": [{"name": "a", "weight": 0.5}, {"name": "a", "weight": 0.5}]}, "unique"),
        ({"planned_sample_size": -5}, "planned_sample_size"),
        ({"primary_metric": "no_such_metric"}, "not in the catalogue: no_such_metric"),
        ({"guardrail_metrics": ["ghost"]}, "not in the catalogue: ghost"),
        ({"alpha": 0.5}, "alpha"),
        ({"alpha": 0}, "alpha"),
        ({"power": 0.5}, "power"),
        ({"power": 1.0}, "power"),
        ({"planned_start": "2026-02-01", "planned_end": "2026-01-01"}, "before the start"),
        ({"impact": 5}, "RICE scale"),
        ({"confidence": 120}, "confidence"),
        ({"effort": 0}, "effort"),
        ({"analysis_mode": "bayesian"}, "analysis_mode"),
        ({"surprise": 1}, "surprise"),
        # limits of the database columns and of finite arithmetic
        ({"planned_sample_size": 2_147_483_648}, "planned_sample_size: .*1 to 2,147,483,647"),
        ({"target_segment": "x" * 201}, "target_segment: .*at most 200 characters"),
        ({"name": "x" * 201}, "name: .*1 to 200 characters"),
        ({"owner": "x" * 121}, "owner: .*1 to 120 characters"),
        ({"tags": ["ok", "x" * 61]}, "tags.1: .*at most 60 characters"),
        ({"mde": float("nan")}, "mde: .*finite"),
        ({"mde": float("inf")}, "mde: .*finite"),
        ({"alpha": float("nan")}, "alpha: .*finite"),
        ({"power": float("nan")}, "power: .*finite"),
        ({"reach": float("inf")}, "reach: .*finite"),
        ({"reach": 2e12}, "reach: .*0 to 1,000,000,000,000"),
        ({"impact": float("nan")}, "impact: .*finite"),
        ({"confidence": float("nan")}, "confidence: .*finite"),
        ({"effort": float("inf")}, "effort: .*finite"),
        ({"effort": 0.001}, "effort: .*0.01 to 10,000"),
        ({"effort": 10_001}, "effort: .*0.01 to 10,000"),
        ({"name": "nul\x00name"}, "name: text cannot contain NUL"),
        ({"owner": "ma\x00ria"}, "owner: text cannot contain NUL"),
        ({"hypothesis": "lifts \x00 conversion"}, "hypothesis: text cannot contain NUL"),
        ({"target_segment": "web\x00"}, "target_segment: text cannot contain NUL"),
        ({"learnings": "\x00"}, "learnings: text cannot contain NUL"),
        ({"tags": ["u\x00i"]}, "tags.0: text cannot contain NUL"),
        ({"primary_metric": "conv\x00ersion"}, "primary_metric: text cannot contain NUL"),
        ({"guardrail_metrics": ["lat\x00ency"]}, "guardrail_metrics.0: text cannot contain NUL"),
        ({"variants": [{"name": "control", "weight": 0.5}, {"name": "g\x00", "weight": 0.5}]},
         "variants.1.name: text cannot contain NUL"),
        ({"hypothesis": "half a pair \ud800"}, "hypothesis: .*unicode string"),
        ({"refresh_every_days": 0}, "refresh_every_days: .*1 to 90"),
        ({"refresh_every_days": 91}, "refresh_every_days: .*1 to 90"),
        # caps on long texts and lists
        ({"hypothesis": "h" * 5_001}, "hypothesis: .*at most 5,000 characters"),
        ({"hypothesis": "h" * 5_000_000}, "hypothesis: .*at most 5,000 characters"),
        ({"learnings": "l" * 20_001}, "learnings: .*at most 20,000 characters"),
        ({"tags": [f"t{i}" for i in range(31)]}, "tags: .*at most 30 tags"),
        ({"guardrail_metrics": ["latency"] * 21}, "guardrail_metrics: .*at most 20"),
        ({"primary_metric": "m" * 81}, "primary_metric: .*at most 80 characters"),
        # numbers must be numbers, days must be ISO days
        ({"planned_sample_size": True}, "planned_sample_size: Input should be a valid integer"),
        # (1000.0 is an integer to JSON Schema, and accepted as 1000; 1000.5 is none)
        ({"planned_sample_size": 1000.5}, "planned_sample_size: Input should be a valid integer"),
        ({"planned_sample_size": "1000"}, "planned_sample_size: Input should be a valid integer"),
        ({"mde": True}, "mde: Input should be a valid number"),
        ({"confidence": False}, "confidence: Input should be a valid number"),
        ({"reach": "5"}, "reach: Input should be a valid number"),
        ({"refresh_every_days": True}, "refresh_every_days: Input should be a valid integer"),
        ({"variants": [{"name": "control", "weight": True}, {"name": "b", "weight": 0.5}]},
         "variants.0.weight: Input should be a valid number"),
        ({"planned_start": 0}, "planned_start: .*YYYY-MM-DD"),
        ({"planned_start": "2026-01-01T00:00:00"}, "planned_start: .*YYYY-MM-DD"),
    ],
)
def test_registry_create_rejects_bad_input_and_writes_nothing(
    session: Session, metrics: list[str], overrides: dict[str, Any], message: str
) -> None:
    before = row_counts(session)
    with pytest.raises(InvalidInput, match=message):
        registry.create_experiment(session, data=draft(**overrides), actor=EDITOR)
    assert row_counts(session) == before


def test_registry_create_refuses_duplicate_name_ignoring_case(
    session: Session, metrics: list[str]
) -> None:
    registry.create_experiment(session, data=draft(), actor=EDITOR)
    before = row_counts(session)
    with pytest.raises(Conflict, match="already exists"):
        registry.create_experiment(session, data=draft(name="GREEN BUTTON"), actor=EDITOR)
    assert row_counts(session) == before


def test_registry_rename_to_a_taken_name_is_a_conflict(
    session: Session, metrics: list[str]
) -> None:
    registry.create_experiment(session, data=draft(), actor=EDITOR)
    other = registry.create_experiment(session, data=draft(name="Blue button"), actor=EDITOR)
    before = row_counts(session)
    with pytest.raises(Conflict, match="already exists"):
        registry.update_experiment(session, experiment_id=other.id,
                                   changes={"name": "green button"}, expected_version=1,
                                   actor=EDITOR)
    assert row_counts(session) == before
    assert registry.get_experiment(session, experiment_id=other.id).name == "Blue button"


def test_registry_accepts_the_longest_texts(session: Session, metrics: list[str]) -> None:
    exp = registry.create_experiment(session, data=draft(
        hypothesis="h" * registry.MAX_HYPOTHESIS_LENGTH,
        learnings="l" * registry.MAX_LEARNINGS_LENGTH,
        tags=[f"t{i}" for i in range(registry.MAX_TAGS)],
        planned_start="2026-03-09",
    ), actor=EDITOR)
    stored = registry.get_experiment(session, experiment_id=exp.id)
    assert len(stored.hypothesis) == 5_000 and len(stored.learnings) == 20_000
    assert len(stored.tags) == 30 and stored.planned_start == date(2026, 3, 9)


def test_registry_update_refuses_null_for_fields_that_cannot_be_cleared(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    before = row_counts(session)
    for field in ("name", "owner", "hypothesis", "alpha", "tags", "variants", "learnings"):
        with pytest.raises(InvalidInput, match=field):
            registry.update_experiment(session, experiment_id=exp.id, changes={field: None},
                                       expected_version=1, actor=EDITOR)
    assert row_counts(session) == before
    cleared = registry.update_experiment(session, experiment_id=exp.id,
                                         changes={"planned_sample_size": None},
                                         expected_version=1, actor=EDITOR)
    assert cleared.planned_sample_size is None and cleared.version == 2


# ----------------------------------------------------------------------------- roles


def test_registry_viewer_cannot_write(session: Session, metrics: list[str]) -> None:
    with pytest.raises(PermissionDenied, match="viewer role"):
        registry.create_experiment(session, data=draft(), actor=VIEWER)
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    with pytest.raises(PermissionDenied):
        registry.update_experiment(
            session, experiment_id=exp.id, changes={"owner": "x"}, expected_version=1,
            actor=VIEWER,
        )
    with pytest.raises(PermissionDenied):
        registry.transition_experiment(
            session, experiment_id=exp.id, to_status="running", expected_version=1,
            actor=VIEWER,
        )
    with pytest.raises(PermissionDenied):
        catalogue.create_metric(session, data={"name": "m", "kind": "mean"}, actor=VIEWER)
    assert registry.get_experiment(session, experiment_id=exp.id).version == 1


# ----------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ({"hypothesis": ""}, "a hypothesis"),
        ({"primary_metric": None}, "a primary metric"),
        ({"variants": []}, "variants"),
        ({"planned_sample_size": None}, "planned sample size"),
    ],
)
def test_registry_launch_needs_a_complete_plan(
    session: Session, metrics: list[str], missing: dict[str, Any], message: str
) -> None:
    exp = registry.create_experiment(session, data=draft(**missing), actor=EDITOR)
    with pytest.raises(RuleViolation, match=message):
        launch(session, exp)
    after = registry.get_experiment(session, experiment_id=exp.id)
    assert after.status == "proposed" and after.frozen_plan is None and after.version == 1


def test_registry_launch_freezes_the_plan(session: Session, metrics: list[str]) -> None:
    exp = launch(session, registry.create_experiment(session, data=draft(), actor=EDITOR))
    assert exp.status == "running" and exp.actual_start == date(2026, 1, 5)
    assert exp.frozen_plan is not None
    assert exp.frozen_plan["primary_metric"] == "conversion"
    assert exp.frozen_plan["variants"] == [
        {"name": "control", "weight": 0.5}, {"name": "green", "weight": 0.5}
    ]
    assert set(exp.frozen_plan) == set(registry.FROZEN_FIELDS)


def test_registry_complete_needs_a_decision(session: Session, metrics: list[str]) -> None:
    exp = launch(session, registry.create_experiment(session, data=draft(), actor=EDITOR))
    with pytest.raises(RuleViolation, match="needs a decision"):
        registry.transition_experiment(
            session, experiment_id=exp.id, to_status="completed", expected_version=exp.version,
            actor=EDITOR,
        )
    done = registry.transition_experiment(
        session, experiment_id=exp.id, to_status="completed", expected_version=exp.version,
        actor=EDITOR, decision="ship", learnings="Green wins.", on=date(2026, 2, 1),
    )
    assert done.status == "completed" and done.decision == "ship"
    assert done.actual_end == date(2026, 2, 1) and done.learnings == "Green wins."


@pytest.mark.parametrize("start", ["proposed", "running"])
def test_registry_abandon_needs_a_reason(
    session: Session, metrics: list[str], start: str
) -> None:
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    if start == "running":
        exp = launch(session, exp)
    with pytest.raises(RuleViolation, match="needs a reason"):
        registry.transition_experiment(
            session, experiment_id=exp.id, to_status="abandoned", expected_version=exp.version,
            actor=EDITOR, reason="  ",
        )
    gone = registry.transition_experiment(
        session, experiment_id=exp.id, to_status="abandoned", expected_version=exp.version,
        actor=EDITOR, reason="Vendor contract ended",
    )
    assert gone.status == "abandoned" and gone.abandon_reason == "Vendor contract ended"
    assert registry.audit_history(session, experiment_id=exp.id)[-1].reason == (
        "Vendor contract ended"
    )


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], "completed"),
        (["running", "completed"], "running"),
        (["running", "completed"], "abandoned"),
        (["abandoned"], "running"),
        (["abandoned"], "proposed"),
        (["running"], "proposed"),
        (["running"], "running"),
    ],
)
def test_registry_refuses_moves_outside_the_lifecycle(
    session: Session, metrics: list[str], path: list[str], target: str
) -> None:
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    for step in path:
        exp = registry.transition_experiment(
            session, experiment_id=exp.id, to_status=step, expected_version=exp.version,  # type: ignore[arg-type]
            actor=EDITOR, decision="ship", reason="r",
        )
    with pytest.raises(RuleViolation, match="cannot move"):
        registry.transition_experiment(
            session, experiment_id=exp.id, to_status=target, expected_version=exp.version,  # type: ignore[arg-type]
            actor=EDITOR, decision="ship", reason="r",
        )
    assert registry.get_experiment(session, experiment_id=exp.id).status == exp.status


# ----------------------------------------------------------------------------- updates


def test_registry_frozen_field_change_needs_reason_and_is_a_deviation(
    session: Session, metrics: list[str]
) -> None:
    exp = launch(session, registry.create_experiment(session, data=draft(), actor=EDITOR))
    with pytest.raises(RuleViolation, match="plan deviation and needs a reason"):
        registry.update_experiment(
            session, experiment_id=exp.id, changes={"planned_sample_size": 2000},
            expected_version=exp.version, actor=EDITOR,
        )
    assert registry.plan_deviations(session, experiment_id=exp.id) == []
    changed = registry.update_experiment(
        session, experiment_id=exp.id, changes={"planned_sample_size": 2000, "owner": "sam"},
        expected_version=exp.version, actor=EDITOR, reason="Traffic was lower than expected",
    )
    assert changed.planned_sample_size == 2000 and changed.version == exp.version + 1
    assert changed.frozen_plan is not None
    assert changed.frozen_plan["planned_sample_size"] == 1000  # the registered plan is kept
    deviations = registry.plan_deviations(session, experiment_id=exp.id)
    assert len(deviations) == 1
    assert deviations[0].changes["planned_sample_size"] == [1000, 2000]
    assert deviations[0].reason == "Traffic was lower than expected"


def test_registry_non_plan_fields_change_freely_after_launch(
    session: Session, metrics: list[str]
) -> None:
    exp = launch(session, registry.create_experiment(session, data=draft(), actor=EDITOR))
    changed = registry.update_experiment(
        session, experiment_id=exp.id, changes={"owner": "sam", "tags": ["ui", "q3"]},
        expected_version=exp.version, actor=EDITOR,
    )
    assert changed.owner == "sam"
    assert registry.plan_deviations(session, experiment_id=exp.id) == []
    assert registry.audit_history(session, experiment_id=exp.id)[-1].changes == {
        "owner": ["maria", "sam"], "tags": [["ui"], ["ui", "q3"]]
    }


def test_registry_proposed_plan_edits_are_not_deviations(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    registry.update_experiment(
        session, experiment_id=exp.id, changes={"alpha": 0.01, "variants": [
            {"name": "control", "weight": 0.4}, {"name": "green", "weight": 0.3},
            {"name": "blue", "weight": 0.3}]},
        expected_version=exp.version, actor=EDITOR,
    )
    after = registry.get_experiment(session, experiment_id=exp.id)
    assert [v.name for v in after.variants] == ["control", "green", "blue"]
    assert after.alpha == 0.01
    assert registry.plan_deviations(session, experiment_id=exp.id) == []


def test_registry_closed_experiments_only_take_learnings_tags_owner(
    session: Session, metrics: list[str]
) -> None:
    exp = launch(session, registry.create_experiment(session, data=draft(), actor=EDITOR))
    exp = registry.transition_experiment(
        session, experiment_id=exp.id, to_status="completed", expected_version=exp.version,
        actor=EDITOR, decision="ship",
    )
    with pytest.raises(RuleViolation, match="is completed"):
        registry.update_experiment(
            session, experiment_id=exp.id, changes={"hypothesis": "rewritten"},
            expected_version=exp.version, actor=EDITOR, reason="oops",
        )
    ok = registry.update_experiment(
        session, experiment_id=exp.id, changes={"learnings": "Works on mobile"},
        expected_version=exp.version, actor=EDITOR,
    )
    assert ok.learnings == "Works on mobile"


def test_registry_stale_version_is_a_conflict_and_writes_nothing(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    registry.update_experiment(
        session, experiment_id=exp.id, changes={"owner": "a"}, expected_version=1, actor=EDITOR
    )
    before = row_counts(session)
    with pytest.raises(Conflict, match="changed by someone else"):
        registry.update_experiment(
            session, experiment_id=exp.id, changes={"owner": "b"}, expected_version=1,
            actor=EDITOR,
        )
    with pytest.raises(Conflict):
        registry.transition_experiment(
            session, experiment_id=exp.id, to_status="running", expected_version=1,
            actor=EDITOR,
        )
    assert row_counts(session) == before
    assert registry.get_experiment(session, experiment_id=exp.id).owner == "a"


def test_registry_update_bad_input_writes_nothing(session: Session, metrics: list[str]) -> None:
    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    before = row_counts(session)
    for changes in (
        {"variants": [{"name": "control", "weight": 0.9}, {"name": "b", "weight": 0.3}]},
        {"primary_metric": "unknown"},
        {"alpha": 0.7},
        {"name": ""},
        {"planned_sample_size": 0},
    ):
        with pytest.raises(InvalidInput):
            registry.update_experiment(
                session, experiment_id=exp.id, changes=changes, expected_version=1, actor=EDITOR
            )
    assert row_counts(session) == before
    assert registry.get_experiment(session, experiment_id=exp.id).version == 1


def test_registry_unknown_experiment_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        registry.get_experiment(session, experiment_id=999_999)
    with pytest.raises(NotFound):
        registry.get_experiment_by_name(session, name="nope")


# ----------------------------------------------------------------------------- reads


def test_registry_view_reads_the_same_one_by_one_listed_and_written(
    session: Session, metrics: list[str]
) -> None:
    catalogue.create_metric(session, data={"name": "refunds", "kind": "mean"}, actor=ADMIN)
    written = registry.create_experiment(
        session,
        data=draft(guardrail_metrics=["refunds", "latency"], secondary_metrics=["revenue"],
                   guardrail_margins={"refunds": 0.02, "latency": 0.01}, tags=["b", "a"]),
        actor=EDITOR,
    )
    registry.create_experiment(session, data=draft(name="Other", variants=[
        {"name": "control", "weight": 0.4}, {"name": "b", "weight": 0.3},
        {"name": "a", "weight": 0.3}]), actor=EDITOR)
    one = registry.get_experiment(session, experiment_id=written.id)
    # Guardrails and secondaries come by catalogue order (the links carry no position).
    assert one.guardrail_metrics == ["latency", "refunds"]
    assert list(one.guardrail_margins) == ["latency", "refunds"]
    assert one.tags == ["b", "a"]
    assert written == one
    listed = {e.id: e for e in registry.list_experiments(session).items}
    assert listed[one.id] == one
    assert [v.name for v in listed[one.id + 1].variants] == ["control", "b", "a"]
    assert {e.id: e for e in registry.all_experiments(session)} == listed
    with pytest.raises(NotFound):
        registry.get_experiment(session, experiment_id=one.id + 99)


def test_registry_list_filters_sorts_and_paginates(session: Session, metrics: list[str]) -> None:
    for i, (owner, tags) in enumerate(
        [("ann", ["ui"]), ("bob", ["pricing"]), ("ann", ["pricing", "ui"]), ("cy", [])]
    ):
        registry.create_experiment(
            session, data=draft(name=f"Exp {i}", owner=owner, tags=tags,
                                hypothesis=f"Idea number {i} about checkout"),
            actor=EDITOR,
        )
    assert registry.list_experiments(session, owner="ann").total == 2
    assert {e.name for e in registry.list_experiments(session, tag="pricing").items} == {
        "Exp 1", "Exp 2"
    }
    assert [e.name for e in registry.list_experiments(session, search="NUMBER 3").items] == [
        "Exp 3"
    ]
    first = registry.list_experiments(session, sort="name", descending=False, page_size=3)
    second = registry.list_experiments(
        session, sort="name", descending=False, page_size=3, page=2
    )
    assert [e.name for e in first.items] == ["Exp 0", "Exp 1", "Exp 2"]
    assert [e.name for e in second.items] == ["Exp 3"]
    assert first.total == 4 and first.pages == 2
    with pytest.raises(InvalidInput, match="sort"):
        registry.list_experiments(session, sort="id; drop table")


def test_registry_search_matches_like_wildcards_literally(
    session: Session, metrics: list[str]
) -> None:
    for name, hypothesis, tags in [("Discount 50%", "Half price", ["promo_q1"]),
                                   ("Plain", "Nothing special", ["promoxq1"]),
                                   ("Back\\slash", "A \\ in the name", [])]:
        registry.create_experiment(session, data=draft(name=name, hypothesis=hypothesis,
                                                       tags=tags), actor=EDITOR)

    def search(**filters: str) -> list[str]:
        return sorted(e.name for e in registry.list_experiments(session, **filters).items)

    assert search(search="%") == ["Discount 50%"]
    assert search(search="_") == []
    assert search(search="50%") == ["Discount 50%"]
    assert search(search="\\") == ["Back\\slash"]
    assert search(search="plain") == ["Plain"]
    assert search(tag="promo_q1") == ["Discount 50%"]
    assert search(tag="promo%") == []


def test_registry_audit_exports_as_csv(session: Session, metrics: list[str]) -> None:
    import csv
    import io

    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    registry.update_experiment(
        session, experiment_id=exp.id, changes={"owner": "zoë"}, expected_version=1,
        actor=EDITOR,
    )
    rows = list(csv.DictReader(io.StringIO(
        registry.audit_csv(registry.audit_history(session, experiment_id=exp.id))
        .removeprefix("\ufeff")
    )))
    owner_rows = [r for r in rows if r["field"] == "owner"]
    assert owner_rows[-1]["before"] == "maria" and owner_rows[-1]["after"] == "zoë"
    assert owner_rows[-1]["actor"] == EDITOR.name and owner_rows[-1]["action"] == "update"
    listing = list(csv.DictReader(io.StringIO(
        registry.experiments_csv(registry.all_experiments(session)).removeprefix("\ufeff")
    )))
    assert listing[0]["name"] == "Green button"
    assert listing[0]["variants"] == "control:0.5; green:0.5"


def test_registry_csv_exports_read_in_a_spreadsheet(session: Session, metrics: list[str]) -> None:
    """A BOM (Excel reads UTF-8), lists as "a; b", the RICE score rounded, the learnings, and
    an audit naming the experiment with timestamps carrying their UTC offset."""
    import csv
    import io
    from datetime import datetime, timedelta

    exp = registry.create_experiment(session, data=draft(
        name="Gift wrap 🎁", tags=["checkout", "q3"], reach=44_000, impact=2, confidence=80,
        effort=1.2, learnings="Wrapping lifted AOV −2% in DE."), actor=EDITOR)
    text = registry.experiments_csv(registry.all_experiments(session))
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    row = next(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert row["name"] == "Gift wrap 🎁"
    assert row["tags"] == "checkout; q3" and row["guardrail_metrics"] == "latency"
    assert row["rice_score"] == "58666.7"
    assert row["learnings"] == "Wrapping lifted AOV −2% in DE."
    from core.backlog import rice

    rice.promote_idea(session, experiment_id=exp.id, expected_version=1, actor=EDITOR)
    audit = registry.audit_csv(registry.audit_history(session))
    assert audit.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(audit.removeprefix("\ufeff"))))
    assert rows and {r["experiment"] for r in rows} == {"Gift wrap 🎁"}
    assert {r["entity_id"] for r in rows} == {str(exp.id)}
    assert all(datetime.fromisoformat(r["at"]).utcoffset() == timedelta(0) for r in rows)
    after = {r["field"]: (r["before"], r["after"]) for r in rows}
    assert after["tags"] == ("", "checkout; q3")
    assert after["variants"] == ("", "name: control, weight: 0.5; name: green, weight: 0.5")
    assert after["rice_at_promotion"] == (
        "", "reach: 44000; impact: 2; confidence: 80; effort: 1.2; rice_score: 58666.7")


# ----------------------------------------------------------------------------- limits


def test_registry_accepts_values_at_the_limits(session: Session, metrics: list[str]) -> None:
    exp = registry.create_experiment(session, data=draft(
        name="n" * 200, owner="o" * 120, target_segment="s" * 200, tags=["t" * 60],
        planned_sample_size=registry.MAX_SAMPLE_SIZE, reach=registry.MAX_REACH, impact=3,
        confidence=100, effort=registry.EFFORT_RANGE[0],
        refresh_every_days=registry.MAX_REFRESH_EVERY_DAYS,
    ), actor=EDITOR)
    stored = registry.get_experiment(session, experiment_id=exp.id)
    assert stored.planned_sample_size == 2_147_483_647  # fits the INTEGER column
    assert len(stored.name) == 200 and len(stored.target_segment) == 200
    assert stored.rice_score == pytest.approx(3e14)  # largest possible score: finite


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"planned_sample_size": 2**31}, "planned_sample_size"),
        ({"target_segment": "x" * 201}, "target_segment"),
        ({"name": "x" * 201}, "name"),
        ({"owner": "x" * 121}, "owner"),
        ({"tags": ["x" * 61]}, "tags.0"),
        ({"mde": float("inf")}, "mde: .*finite"),
        ({"alpha": float("nan")}, "alpha: .*finite"),
        ({"power": float("inf")}, "power: .*finite"),
        ({"reach": 1e13}, "reach"),
        ({"impact": float("inf")}, "impact: .*finite"),
        ({"confidence": float("inf")}, "confidence: .*finite"),
        ({"effort": 0.0}, "effort"),
        ({"effort": float("nan")}, "effort: .*finite"),
        ({"learnings": "a\x00b"}, "learnings: text cannot contain NUL"),
        ({"tags": ["\x00"]}, "tags.0: text cannot contain NUL"),
        ({"refresh_every_days": 0}, "refresh_every_days"),
    ],
)
def test_registry_update_refuses_values_past_the_limits_and_writes_nothing(
    session: Session, metrics: list[str], changes: dict[str, Any], message: str
) -> None:
    exp = registry.create_experiment(
        session, data=draft(reach=1000, impact=1, confidence=50, effort=2), actor=EDITOR
    )
    before = row_counts(session)
    with pytest.raises(InvalidInput, match=message):
        registry.update_experiment(
            session, experiment_id=exp.id, changes=changes, expected_version=1, actor=EDITOR
        )
    assert row_counts(session) == before
    assert registry.get_experiment(session, experiment_id=exp.id) == exp


# ----------------------------------------------------------------------------- refresh schedule


def test_registry_refresh_schedule_is_stored_edited_and_audited(
    session: Session, metrics: list[str]
) -> None:
    exp = registry.create_experiment(session, data=draft(refresh_every_days=7), actor=EDITOR)
    assert exp.refresh_every_days == 7
    assert registry.get_experiment(session, experiment_id=exp.id).refresh_every_days == 7
    daily = registry.update_experiment(
        session, experiment_id=exp.id, changes={"refresh_every_days": None},
        expected_version=exp.version, actor=EDITOR,
    )
    assert daily.refresh_every_days is None and daily.version == exp.version + 1
    assert registry.audit_history(session, experiment_id=exp.id)[-1].changes == {
        "refresh_every_days": [7, None]
    }


def test_registry_refresh_schedule_is_not_part_of_the_frozen_plan(
    session: Session, metrics: list[str]
) -> None:
    exp = launch(session, registry.create_experiment(session, data=draft(), actor=EDITOR))
    assert exp.frozen_plan is not None and "refresh_every_days" not in exp.frozen_plan
    changed = registry.update_experiment(
        session, experiment_id=exp.id, changes={"refresh_every_days": 3},
        expected_version=exp.version, actor=EDITOR,
    )
    assert changed.refresh_every_days == 3
    assert registry.plan_deviations(session, experiment_id=exp.id) == []
    done = registry.transition_experiment(
        session, experiment_id=exp.id, to_status="completed", expected_version=changed.version,
        actor=EDITOR, decision="ship",
    )
    closed = registry.update_experiment(  # set_refresh_schedule accepts any status, so do we
        session, experiment_id=exp.id, changes={"refresh_every_days": None},
        expected_version=done.version, actor=EDITOR,
    )
    assert closed.refresh_every_days is None


def test_registry_and_refresh_service_agree_on_the_schedule(
    session: Session, metrics: list[str]
) -> None:
    from core.workflows import refresh

    exp = registry.create_experiment(session, data=draft(), actor=EDITOR)
    refresh.set_refresh_schedule(session, experiment_id=exp.id, every_days=14, actor=EDITOR)
    seen = registry.get_experiment(session, experiment_id=exp.id)
    assert seen.refresh_every_days == 14 and seen.version == exp.version + 1
    with pytest.raises(Conflict):  # the schedule change bumped the version
        registry.update_experiment(
            session, experiment_id=exp.id, changes={"refresh_every_days": 2},
            expected_version=exp.version, actor=EDITOR,
        )
    for bad in (0, refresh.MAX_REFRESH_EVERY_DAYS + 1):
        with pytest.raises(InvalidInput, match="refresh_every_days"):
            registry.update_experiment(
                session, experiment_id=exp.id, changes={"refresh_every_days": bad},
                expected_version=seen.version, actor=EDITOR,
            )
        with pytest.raises(InvalidInput, match="every_days"):
            refresh.set_refresh_schedule(session, experiment_id=exp.id, every_days=bad,
                                         actor=EDITOR)
    assert registry.get_experiment(session, experiment_id=exp.id) == seen


def test_registry_csv_exports_neutralise_formulas(session: Session, metrics: list[str]) -> None:
    """OWASP "CSV Injection": the registry's CSV (the Registry page's export) and the audit
    CSV (its audit exports, and the API's audit.csv) quote text starting with = + - @, a tab or
    a carriage return; numbers stay numbers."""
    import csv
    import io

    exp = registry.create_experiment(session, data=draft(
        name="=1+2", owner="+cmd|' /C calc'!A0", hypothesis="-2+3", target_segment="@A1",
        tags=["@tag", "-x"], prior_lift_mean=-0.25, prior_lift_sd=0.1,
    ), actor=EDITOR)
    listing = list(csv.DictReader(io.StringIO(
        registry.experiments_csv(registry.all_experiments(session)).removeprefix("\ufeff")
    )))
    assert (listing[0]["name"], listing[0]["owner"], listing[0]["hypothesis"]) == (
        "'=1+2", "'+cmd|' /C calc'!A0", "'-2+3")
    assert listing[0]["tags"] == "'@tag; -x"  # the joined list starts with "@"
    audit = list(csv.DictReader(io.StringIO(
        registry.audit_csv(registry.audit_history(session, experiment_id=exp.id))
        .removeprefix("\ufeff")
    )))
    after = {r["field"]: r["after"] for r in audit}
    assert after["name"] == "'=1+2" and after["owner"] == "'+cmd|' /C calc'!A0"
    assert after["target_segment"] == "'@A1"
    assert after["prior_lift_mean"] == "-0.25"


def test_registry_keeps_tag_rows_with_the_tags(session: Session, metrics: list[str]) -> None:
    """experiment_tags follows every change of an experiment's tags (the tag filter and the
    list of tags read it), and the list of tags is every tag in use, once, in order."""
    first = registry.create_experiment(session, data=draft(tags=["zoë", "ui", "zoë"]),
                                       actor=EDITOR)
    registry.create_experiment(session, data=draft(name="Other", tags=["pricing"]),
                               actor=EDITOR)

    def rows() -> set[str]:
        return set(session.scalars(
            select(ExperimentTag.tag).where(ExperimentTag.experiment_id == first.id)))

    assert rows() == {"zoë", "ui"}
    assert registry.tags(session) == sorted({"zoë", "ui", "pricing"})
    assert [e.name for e in registry.list_experiments(session, tag="zoë").items] == [
        "Green button"]
    registry.update_experiment(session, experiment_id=first.id,
                               changes={"tags": ["ui", "checkout"]}, expected_version=1,
                               actor=EDITOR)
    assert rows() == {"ui", "checkout"}
    assert registry.tags(session) == ["checkout", "pricing", "ui"]
    assert registry.list_experiments(session, tag="zoë").total == 0
    registry.update_experiment(session, experiment_id=first.id, changes={"tags": []},
                               expected_version=2, actor=EDITOR)
    assert rows() == set()
    assert registry.get_experiment(session, experiment_id=first.id).tags == []


def test_registry_owners_are_each_owner_once_in_order(
    session: Session, metrics: list[str]
) -> None:
    for i, owner in enumerate(["cy", "Ann", "bob", "cy", "ann"]):
        registry.create_experiment(session, data=draft(name=f"E{i}", owner=owner),
                                   actor=EDITOR)
    expected = list(session.scalars(
        select(Experiment.owner).distinct().order_by(Experiment.owner)))
    assert registry.owners(session) == expected
    assert sorted(registry.owners(session)) == sorted({"cy", "Ann", "bob", "ann"})


def test_registry_descending_list_is_the_ascending_one_reversed(
    session: Session, metrics: list[str]
) -> None:
    """Ties go by id in the sort's direction: a descending sort reverses the whole order
    (so one index serves both directions)."""
    for i in range(5):
        registry.create_experiment(session, data=draft(name=f"E{i}", owner="same"),
                                   actor=EDITOR)
    for sort in registry.SORT_FIELDS:
        up = [e.id for e in registry.list_experiments(session, sort=sort,
                                                      descending=False).items]
        down = [e.id for e in registry.list_experiments(session, sort=sort,
                                                        descending=True).items]
        assert down == up[::-1], sort
    owner_up = [e.id for e in registry.list_experiments(session, sort="owner",
                                                        descending=False).items]
    assert owner_up == sorted(owner_up)


def test_registry_audit_values_read_for_people() -> None:
    """Issue 23: the audit showed "Variants: — → {'name': 'control', …}" and "dont_ship"."""
    variants = [{"name": "control", "weight": 0.5}, {"name": "green", "weight": 0.5}]
    assert registry.change_text({"variants": [None, variants]}) == (
        "Variants: — → control 50%, green 50%")
    assert registry.change_text({"decision": [None, "dont_ship"], "reach": [None, 30000.0]}) == (
        "Decision: — → Don't ship; Reach: — → 30,000")
    assert registry.audit_value("guardrail_margins", {"page_load_time_ms": 0.02}) == (
        "page_load_time_ms: 2%")
    assert registry.audit_value("mde", 0.05) == "5%"
    inputs = {"kind": "mean", "baseline": 12.5, "sd": 30.0, "weights": [0.5, 0.5],
              "daily_traffic": None}
    text = registry.audit_value("plan_inputs", inputs)
    assert text == "kind mean, baseline 12.5, sd 30, weights 50%, 50%"
    assert "{" not in text and "'" not in text
