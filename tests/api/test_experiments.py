"""Experiment routes: happy paths, validation (422/400), conflicts and refused moves (409),
404, audit CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import AuditEntry, Experiment, Variant
from tests.api.conftest import draft, headers, make_app

URL = "/api/v1/experiments"


def counts(session: Session) -> tuple[int | None, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(m))
        for m in (Experiment, Variant, AuditEntry)
    )


@pytest.fixture
def created(client: TestClient, writer: dict[str, str], metrics: list[str]) -> dict:
    response = client.post(URL, json=draft(), headers=writer)
    assert response.status_code == 201, response.text
    return response.json()


# ----------------------------------------------------------------------------- create / get


def test_experiments_create_returns_201_location_and_etag(
    client: TestClient, writer: dict[str, str], metrics: list[str]
) -> None:
    response = client.post(URL, json=draft(), headers=writer)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "proposed" and body["version"] == 1
    assert body["primary_metric"] == "conversion"
    assert response.headers["location"] == f"{URL}/{body['id']}"
    assert response.headers["etag"] == '"1"'
    fetched = client.get(response.headers["location"], headers=writer)
    assert fetched.status_code == 200 and fetched.json()["name"] == "Green button"
    assert fetched.headers["etag"] == '"1"'


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (draft(name=""), "body.name"),
        (draft(planned_sample_size="lots"), "body.planned_sample_size"),
        (draft(planned_sample_size=10**30), "body.planned_sample_size"),
        (draft(alpha=0.7), "body.alpha"),
        (draft(colour="green"), "body.colour"),
        (draft(variants=[{"name": "control", "weight": 1.5}]), "body.variants.0.weight"),
        (draft(target_segment="x" * 201), "body.target_segment"),
        (draft(hypothesis="nul \x00 byte"), "body"),
        (draft(primary_metric="no_such_metric"), "metrics"),
        (draft(variants=[{"name": "a", "weight": 0.6}, {"name": "b", "weight": 0.6}]),
         "variants"),
        ({"owner": "maria"}, "body.name"),
    ],
)
def test_experiments_create_invalid_is_422_and_writes_nothing(
    client: TestClient, session: Session, writer: dict[str, str], metrics: list[str],
    body: dict, location: str,
) -> None:
    before = counts(session)
    response = client.post(URL, json=body, headers=writer)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["detail"]
    assert location in [e["location"] for e in problem["errors"]]
    assert "Traceback" not in response.text
    assert counts(session) == before


@pytest.mark.parametrize(
    "raw",
    [b'{"name": "x",', b"not json", b'{"name": "x", "owner": "y", "mde": NaN}',
     b'{"planned_sample_size": ' + b"9" * 5000 + b"}"],
)
def test_experiments_create_malformed_body_is_4xx_problem(
    client: TestClient, session: Session, writer: dict[str, str], raw: bytes
) -> None:
    before = counts(session)
    response = client.post(
        URL, content=raw, headers={**writer, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
    assert counts(session) == before


def test_experiments_invalid_json_is_400(client: TestClient, writer: dict[str, str]) -> None:
    response = client.post(
        URL, content=b'{"name": ', headers={**writer, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("malformed-json")


def test_experiments_duplicate_name_is_409_and_writes_nothing(
    client: TestClient, session: Session, writer: dict[str, str], created: dict
) -> None:
    before = counts(session)
    response = client.post(URL, json=draft(name="green BUTTON"), headers=writer)
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]
    renamed = client.post(URL, json=draft(name="Other"), headers=writer).json()
    clash = client.patch(f"{URL}/{renamed['id']}", json={"name": "Green button", "version": 1},
                         headers=writer)
    assert clash.status_code == 409 and "already exists" in clash.json()["detail"]
    assert counts(session)[0] == before[0] + 1


@pytest.mark.parametrize(
    ("overrides", "words"),
    [({"hypothesis": "h" * 5_001}, "hypothesis"),
     ({"planned_sample_size": True}, "planned_sample_size"),
     ({"mde": False}, "mde"),
     ({"confidence": True}, "confidence"),
     ({"planned_sample_size": "1000"}, "planned_sample_size"),
     ({"planned_start": 0}, "planned_start")],
)
def test_experiments_create_refuses_long_texts_and_non_numbers(
    client: TestClient, session: Session, writer: dict[str, str], metrics: list[str],
    overrides: dict, words: str,
) -> None:
    before = counts(session)
    response = client.post(URL, json=draft(**overrides), headers=writer)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["location"] == f"body.{words}"
    assert counts(session) == before


def test_experiments_search_escapes_like_wildcards(
    client: TestClient, writer: dict[str, str], metrics: list[str]
) -> None:
    for name in ("Discount 50%", "Plain button"):
        assert client.post(URL, json=draft(name=name), headers=writer).status_code == 201

    def found(q: str) -> list[str]:
        response = client.get(URL, params={"q": q}, headers=writer)
        assert response.status_code == 200
        return [e["name"] for e in response.json()["items"]]

    assert found("%") == ["Discount 50%"]
    assert found("_") == []
    assert found("plain") == ["Plain button"]


@pytest.mark.parametrize(("path", "status"), [("999999", 404), ("0", 422), ("abc", 422),
                                              ("99999999999999999999", 422)])
def test_experiments_get_missing_or_bad_id(
    client: TestClient, writer: dict[str, str], path: str, status: int
) -> None:
    response = client.get(f"{URL}/{path}", headers=writer)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_experiments_body_over_the_limit_is_413(session: Session, keys: dict[str, str]) -> None:
    client = TestClient(make_app(session, api_max_upload_mb=1))
    big = draft(hypothesis="x" * (1024 * 1024 + 10))
    response = client.post(URL, json=big, headers=headers(keys["write"]))
    assert response.status_code == 413
    assert "1 MB" in response.json()["detail"]


def test_experiments_unknown_route_and_method_are_problems(
    client: TestClient, writer: dict[str, str]
) -> None:
    missing = client.get("/api/v1/nothing-here", headers=writer)
    assert missing.status_code == 404 and missing.json()["status"] == 404
    wrong = client.delete(f"{URL}/1", headers=writer)
    assert wrong.status_code == 405
    assert "PATCH" in wrong.headers["allow"]


# ----------------------------------------------------------------------------- list


def test_experiments_list_filters_sorts_and_pages(
    client: TestClient, writer: dict[str, str], metrics: list[str]
) -> None:
    for name, owner, tags in [("Alpha test", "maria", ["ui"]), ("Beta test", "sam", ["search"]),
                              ("Gamma test", "maria", ["ui", "search"])]:
        assert client.post(URL, json=draft(name=name, owner=owner, tags=tags),
                           headers=writer).status_code == 201
    page = client.get(URL, params={"sort": "name", "page_size": 2}, headers=writer).json()
    assert [e["name"] for e in page["items"]] == ["Alpha test", "Beta test"]
    assert (page["total"], page["pages"], page["page"]) == (3, 2, 1)
    second = client.get(URL, params={"sort": "name", "page_size": 2, "page": 2}, headers=writer)
    assert [e["name"] for e in second.json()["items"]] == ["Gamma test"]
    desc = client.get(URL, params={"sort": "-name"}, headers=writer).json()
    assert desc["items"][0]["name"] == "Gamma test"

    def names(**params: str) -> list[str]:
        body = client.get(URL, params={"sort": "name", **params}, headers=writer).json()
        return [e["name"] for e in body["items"]]

    assert names(owner="MARIA") == ["Alpha test", "Gamma test"]
    assert names(tag="search") == ["Beta test", "Gamma test"]
    assert names(q="gamma") == ["Gamma test"]
    assert names(status="proposed") == ["Alpha test", "Beta test", "Gamma test"]
    assert names(status="running") == []


@pytest.mark.parametrize(
    "params",
    [{"sort": "colour"}, {"page": 0}, {"page_size": 501}, {"status": "paused"},
     {"page": "99999999999999999999999"}, {"q": "a\x00b"}],
)
def test_experiments_list_bad_query_is_422(
    client: TestClient, writer: dict[str, str], params: dict
) -> None:
    response = client.get(URL, params=params, headers=writer)
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"].startswith("query.")


# ----------------------------------------------------------------------------- update


def test_experiments_update_with_version_and_if_match(
    client: TestClient, writer: dict[str, str], created: dict
) -> None:
    response = client.patch(
        f"{URL}/{created['id']}", json={"owner": "sam", "version": 1},
        headers={**writer, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["owner"] == "sam" and response.json()["version"] == 2
    assert response.headers["etag"] == '"2"'


def test_experiments_update_with_version_in_body(
    client: TestClient, writer: dict[str, str], created: dict
) -> None:
    response = client.patch(
        f"{URL}/{created['id']}", json={"hypothesis": "Sharper.", "version": 1}, headers=writer
    )
    assert response.status_code == 200
    assert response.json()["hypothesis"] == "Sharper."


def test_experiments_update_stale_version_is_409_and_changes_nothing(
    client: TestClient, writer: dict[str, str], created: dict
) -> None:
    url = f"{URL}/{created['id']}"
    assert client.patch(url, json={"owner": "sam", "version": 1}, headers=writer).status_code == 200
    stale = client.patch(url, json={"owner": "olivia", "version": 1}, headers=writer)
    assert stale.status_code == 409
    assert stale.json()["type"].endswith("conflict")
    assert "version 2" in stale.json()["detail"]
    assert client.get(url, headers=writer).json()["owner"] == "sam"


def test_experiments_update_if_match_disagreeing_with_the_body_is_409(
    client: TestClient, writer: dict[str, str], created: dict
) -> None:
    url = f"{URL}/{created['id']}"
    response = client.patch(url, json={"owner": "sam", "version": 1},
                            headers={**writer, "If-Match": '"2"'})
    assert response.status_code == 409
    assert "If-Match says 2 but the body says 1" in response.json()["detail"]
    assert client.get(url, headers=writer).json()["version"] == 1


@pytest.mark.parametrize(
    ("extra_headers", "body"),
    [({}, {"owner": "sam"}), ({"If-Match": '"1"'}, {"owner": "sam"}),
     ({"If-Match": "banana"}, {"owner": "sam", "version": 1}),
     ({}, {"owner": "sam", "version": 0}), ({}, {"owner": "sam", "version": True}),
     ({}, {"owner": None, "version": 1}), ({}, {"status": "running", "version": 1}),
     ({}, {"planned_sample_size": 2**40, "version": 1})],
)
def test_experiments_update_bad_request_is_422(
    client: TestClient, writer: dict[str, str], created: dict, extra_headers: dict, body: dict
) -> None:
    url = f"{URL}/{created['id']}"
    response = client.patch(url, json=body, headers={**writer, **extra_headers})
    assert response.status_code == 422, response.text
    assert client.get(url, headers=writer).json()["version"] == 1


def test_experiments_update_missing_is_404(client: TestClient, writer: dict[str, str]) -> None:
    response = client.patch(f"{URL}/424242", json={"owner": "x", "version": 1}, headers=writer)
    assert response.status_code == 404


# ----------------------------------------------------------------------------- transitions


def test_experiments_transitions_launch_and_complete(
    client: TestClient, writer: dict[str, str], created: dict
) -> None:
    url = f"{URL}/{created['id']}/transitions"
    launched = client.post(url, json={"to_status": "running", "version": 1},
                           headers={**writer, "If-Match": "1"})
    assert launched.status_code == 200, launched.text
    assert launched.json()["status"] == "running" and launched.json()["frozen_plan"]
    done = client.post(
        url, json={"to_status": "completed", "decision": "ship", "version": 2}, headers=writer
    )
    assert done.status_code == 200
    assert done.json()["decision"] == "ship"
    history = client.get(f"{URL}/{created['id']}/audit", headers=writer).json()
    assert [h["action"] for h in history] == ["create", "transition:running",
                                              "transition:completed"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [({"to_status": "completed", "version": 1}, 409, "cannot move from proposed"),
     ({"to_status": "abandoned", "version": 1}, 422, "reason"),
     ({"to_status": "abandoned", "reason": "  ", "version": 1}, 422, "reason"),
     ({"to_status": "running", "version": 7}, 409, "changed by someone else"),
     ({"to_status": "running"}, 422, "version"),
     ({"to_status": "proposed", "version": 1}, 422, "to_status"),
     ({"to_status": "paused", "version": 1}, 422, "to_status"),
     ({"to_status": "running", "decision": "ship", "version": 1}, 422, "decision"),
     ({"version": 1}, 422, "to_status")],
)
def test_experiments_transition_refusals(
    client: TestClient, writer: dict[str, str], created: dict, body: dict, status: int,
    words: str,
) -> None:
    response = client.post(f"{URL}/{created['id']}/transitions", json=body, headers=writer)
    assert response.status_code == status
    assert words in response.text
    assert client.get(f"{URL}/{created['id']}", headers=writer).json()["status"] == "proposed"


def test_experiments_launch_needs_a_plan(
    client: TestClient, writer: dict[str, str], metrics: list[str]
) -> None:
    bare = client.post(URL, json={"name": "Bare", "owner": "sam"}, headers=writer).json()
    response = client.post(
        f"{URL}/{bare['id']}/transitions", json={"to_status": "running", "version": 1},
        headers=writer,
    )
    assert response.status_code == 409
    assert "a hypothesis" in response.json()["detail"]
    assert response.json()["type"].endswith("rule-violation")


# ----------------------------------------------------------------------------- audit


def test_experiments_audit_csv_export(
    client: TestClient, writer: dict[str, str], created: dict
) -> None:
    client.patch(f"{URL}/{created['id']}", json={"owner": "sam", "version": 1}, headers=writer)
    response = client.get(f"{URL}/{created['id']}/audit.csv", headers=writer)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads it as UTF-8
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    owner_rows = [r for r in rows if r["field"] == "owner"]
    assert [(r["action"], r["before"], r["after"], r["actor"]) for r in owner_rows] == [
        ("create", "", "maria", "api:writer"), ("update", "maria", "sam", "api:writer")
    ]
    assert {r["experiment"] for r in rows} == {created["name"]}
    assert all(datetime.fromisoformat(r["at"]).utcoffset() == timedelta(0) for r in rows)


def test_experiments_audit_of_missing_experiment_is_404(
    client: TestClient, writer: dict[str, str]
) -> None:
    assert client.get(f"{URL}/31337/audit", headers=writer).status_code == 404
    assert client.get(f"{URL}/31337/audit.csv", headers=writer).status_code == 404


def test_experiments_audit_csv_neutralises_formulas(
    client: TestClient, writer: dict[str, str], metrics: list[str]
) -> None:
    """OWASP "CSV Injection": text a spreadsheet would run as a formula is exported with a
    leading single quote; numbers, negative ones too, are left as they are."""
    body = draft(name='=HYPERLINK("http://evil.example","x")', owner="@SUM(1+1)",
                 hypothesis="-2+3", prior_lift_mean=-0.5, prior_lift_sd=0.1)
    created = client.post(URL, json=body, headers=writer)
    assert created.status_code == 201, created.text
    response = client.get(f"{URL}/{created.json()['id']}/audit.csv", headers=writer)
    rows = {r["field"]: r for r in csv.DictReader(io.StringIO(response.content.decode(
        "utf-8-sig")))}
    assert rows["name"]["after"] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows["owner"]["after"] == "'@SUM(1+1)"
    assert rows["hypothesis"]["after"] == "'-2+3"
    assert rows["prior_lift_mean"]["after"] == "-0.5"


INVISIBLE = ["\u200b", "\u200b\u200c\u200d", "\ufeff\u2060", " \u200b\t", "\u3164", "\u00ad"]


@pytest.mark.parametrize("invisible", INVISIBLE)
def test_experiments_names_of_invisible_characters_only_are_422_and_write_nothing(
    client: TestClient, session: Session, writer: dict[str, str], created: dict, invisible: str
) -> None:
    """Zero-width (and other invisible) characters alone are no name, owner, variant or
    reason: 422 saying what to give, and nothing is written."""
    before = counts(session)
    url = f"{URL}/{created['id']}"
    for body in (draft(name=invisible), draft(name="Visible", owner=invisible),
                 draft(name="Visible", variants=[{"name": "control", "weight": 0.5},
                                                 {"name": invisible, "weight": 0.5}])):
        response = client.post(URL, json=body, headers=writer)
        assert response.status_code == 422, (invisible, response.text)
        assert "visible character" in response.json()["detail"]
    for change in ({"name": invisible}, {"owner": invisible}):
        response = client.patch(url, json={**change, "version": 1}, headers=writer)
        assert response.status_code == 422, (invisible, response.text)
        assert "visible character" in response.json()["detail"]
    abandon = client.post(f"{url}/transitions", headers=writer,
                          json={"to_status": "abandoned", "reason": invisible, "version": 1})
    assert abandon.status_code == 422, abandon.text
    assert counts(session) == before
    # A name may still hold such a character beside visible ones.
    assert client.post(URL, json=draft(name="Green\u200bbutton two"),
                       headers=writer).status_code == 201


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_experiments_json_body_not_in_utf8_is_400_and_writes_nothing(
    client: TestClient, session: Session, writer: dict[str, str], metrics: list[str],
    encoding: str,
) -> None:
    """JSON travels as UTF-8 (RFC 8259 §8.1): a UTF-16 or UTF-32 body is refused, saying so."""
    before = counts(session)
    raw = json.dumps(draft()).encode(encoding)
    response = client.post(URL, content=raw,
                           headers={**writer, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("malformed-json")
    assert "UTF-8" in response.json()["detail"]
    assert counts(session) == before


def test_experiments_whole_numbers_may_be_written_as_floats(
    client: TestClient, writer: dict[str, str], created: dict
) -> None:
    """The document says `version` (and `planned_sample_size`) is an integer, and JSON Schema
    counts 1.0 as one: it is accepted; 1.5 (no integer), true and "1" are not."""
    url = f"{URL}/{created['id']}"
    other = client.post(URL, json=draft(name="Float size", planned_sample_size=1000.0),
                        headers=writer)
    assert other.status_code == 201, other.text
    assert other.json()["planned_sample_size"] == 1000
    for bad in (b"1.5", b"true", b'"1"', b"1e400"):
        response = client.patch(url, content=b'{"owner": "sam", "version": ' + bad + b"}",
                                headers={**writer, "Content-Type": "application/json"})
        assert response.status_code in (400, 422), (bad, response.text)
    response = client.patch(url, content=b'{"owner": "sam", "version": 1.0}',
                            headers={**writer, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    launched = client.post(f"{url}/transitions",
                           headers={**writer, "Content-Type": "application/json"},
                           content=b'{"to_status": "running", "version": 2.0}')
    assert launched.status_code == 200, launched.text


def test_experiments_list_is_kept_by_its_content_and_answers_304(
    client: TestClient, writer: dict[str, str], session: Session, metrics: list[str]
) -> None:
    """A list page is named by its experiments' versions and the total: asked again it is
    served kept (the count and the page query only, no experiment read) and with its ETag as
    If-None-Match 304; a change to an experiment on it, or a new one, gives the new page."""
    from sqlalchemy import event

    for name in ("Alpha test", "Beta test"):
        assert client.post(URL, json=draft(name=name), headers=writer).status_code == 201
    statements: list[str] = []
    connection = session.connection()

    def capture(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.startswith("SELECT") and "api_keys" not in statement:  # not the key's
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", capture)
    try:
        first = client.get(URL, headers=writer)
        made = len(statements)
        again = client.get(URL, headers=writer)
        kept = len(statements) - made
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert (made, kept) == (5, 2)  # count, page, then (first time only) the view's three
    etag = first.headers["etag"]
    assert again.headers["etag"] == etag and first.headers["cache-control"]
    assert client.get(URL, headers={**writer, "If-None-Match": etag}).status_code == 304

    alpha = next(e for e in first.json()["items"] if e["name"] == "Alpha test")
    assert client.patch(f"{URL}/{alpha['id']}", json={"owner": "sam", "version": 1},
                        headers=writer).status_code == 200
    changed = client.get(URL, headers={**writer, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert {e["name"]: e["owner"] for e in changed.json()["items"]}["Alpha test"] == "sam"
    assert client.post(URL, json=draft(name="Gamma test"), headers=writer).status_code == 201
    grown = client.get(URL, headers=writer).json()
    assert grown["total"] == 3 and grown["items"][0]["name"] == "Gamma test"
