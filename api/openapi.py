"""Finishing the OpenAPI document with what FastAPI cannot say from the routes alone.

* A query parameter, header or path segment is a string on the wire and never JSON null: an
  optional one is left out, so its ``anyOf: [..., {"type": "null"}]`` becomes the non-null
  schema (otherwise clients, Schemathesis among them, send the text ``null``).
* Links (OpenAPI 3.1 §4.8.20) from what a response returns to the operations it leads to: a
  created experiment or idea to the operations on it (its ``id`` fills ``experiment_id``, its
  ``version`` the edits' ``version``), a created metric, report, warehouse connection or
  source to reading it back. Stateful
  clients follow them; Schemathesis's stateful phase chains its calls along them.
"""

from __future__ import annotations

from typing import Any

EXPERIMENTS = "/api/v1/experiments"
EXPERIMENT = "/api/v1/experiments/{experiment_id}"
IDEA = "/api/v1/backlog/{experiment_id}"

_ID = {"path.experiment_id": "$response.body#/id"}
_VERSION = {"version": "$response.body#/version"}

_ON_EXPERIMENT: dict[str, tuple[str, str, bool]] = {
    "GetExperiment": ("get", EXPERIMENT, False),
    "UpdateExperiment": ("patch", EXPERIMENT, True),
    "TransitionExperiment": ("post", f"{EXPERIMENT}/transitions", True),
    "AuditHistory": ("get", f"{EXPERIMENT}/audit", False),
    "AuditHistoryCsv": ("get", f"{EXPERIMENT}/audit.csv", False),
    "UploadData": ("post", f"{EXPERIMENT}/data", False),
    "RefreshFromSql": ("post", f"{EXPERIMENT}/data/sql-refresh", False),
    "LatestResults": ("get", f"{EXPERIMENT}/results", False),
    "ResultsHistory": ("get", f"{EXPERIMENT}/results/history", False),
    "ResultsSeries": ("get", f"{EXPERIMENT}/results/series", False),
    "RefreshResults": ("post", f"{EXPERIMENT}/results/refresh", False),
    "SegmentResults": ("get", f"{EXPERIMENT}/segments", False),
    "GenerateReport": ("post", f"{EXPERIMENT}/reports", False),
    "ListReports": ("get", f"{EXPERIMENT}/reports", False),
    "RefreshFromWarehouse": ("post", f"{EXPERIMENT}/warehouse/refresh", False),
    "WarehouseRuns": ("get", f"{EXPERIMENT}/warehouse/runs", False),
}
"""Operations on one experiment: link name -> (method, path, whether the body names a version)."""

_ON_NEW_EXPERIMENT = {k: v for k, v in _ON_EXPERIMENT.items() if k != "LatestResults"}
"""From a just-created experiment: not to its latest results, which cannot exist yet (their 404
would read as the created experiment gone missing)."""

_ON_IDEA: dict[str, tuple[str, str, bool]] = {
    "RescoreIdea": ("patch", IDEA, True),
    "PromoteIdea": ("post", f"{IDEA}/promote", True),
}

_SOURCES: list[tuple[str, str, str, dict[str, tuple[str, str, bool]]]] = [
    ("post", EXPERIMENTS, "201", _ON_NEW_EXPERIMENT),
    ("get", EXPERIMENT, "200", _ON_EXPERIMENT),
    ("patch", EXPERIMENT, "200", _ON_EXPERIMENT),
    ("post", f"{EXPERIMENT}/transitions", "200", _ON_EXPERIMENT),
    ("post", "/api/v1/backlog", "201", {**_ON_IDEA, **_ON_NEW_EXPERIMENT}),
    ("patch", IDEA, "200", {**_ON_IDEA, **_ON_EXPERIMENT}),
    ("post", f"{IDEA}/promote", "200", _ON_EXPERIMENT),
]
"""Responses carrying an experiment: (method, path, status, the links they get)."""

_SIMPLE: list[tuple[str, str, str, str, str, str, dict[str, str]]] = [
    ("post", "/api/v1/metrics", "201", "GetMetric", "get", "/api/v1/metrics/{name}",
     {"path.name": "$response.body#/name"}),
    ("post", f"{EXPERIMENT}/reports", "201", "DownloadReport", "get",
     "/api/v1/reports/{report_id}", {"path.report_id": "$response.body#/id"}),
    *(
        ("post", f"/api/v1/warehouse/{kind}", "201", f"Get{name}", "get",
         f"/api/v1/warehouse/{kind}/{{name}}", {"path.name": "$response.body#/name"})
        for kind, name in (("connections", "Connection"),
                           ("assignment-sources", "AssignmentSource"),
                           ("fact-sources", "FactSource"))
    ),
]
"""Other created records: (method, path, status, link name, target method, target path,
parameters)."""


def finish_document(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with non-body parameters never nullable and the links added (in place)."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                for parameter in operation.get("parameters", []):
                    _drop_null(parameter.get("schema", {}))
    for method, path, status, links in _SOURCES:
        for name, (target_method, target_path, versioned) in links.items():
            link: dict[str, Any] = {
                "operationId": _operation_id(schema, target_method, target_path),
                "parameters": dict(_ID),
            }
            if versioned:
                link["requestBody"] = dict(_VERSION)
            _add_link(schema, method, path, status, name, link)
    for method, path, status, name, target_method, target_path, parameters in _SIMPLE:
        link = {"operationId": _operation_id(schema, target_method, target_path),
                "parameters": parameters}
        _add_link(schema, method, path, status, name, link)
    return schema


def _drop_null(parameter_schema: dict[str, Any]) -> None:
    branches = parameter_schema.get("anyOf")
    if not branches:
        return
    rest = [b for b in branches if b.get("type") != "null"]
    if len(rest) == len(branches):
        return
    del parameter_schema["anyOf"]
    if len(rest) == 1:
        parameter_schema.update(rest[0])
    else:
        parameter_schema["anyOf"] = rest


def _operation_id(schema: dict[str, Any], method: str, path: str) -> str:
    return str(schema["paths"][path][method]["operationId"])


def _add_link(schema: dict[str, Any], method: str, path: str, status: str, name: str,
              link: dict[str, Any]) -> None:
    response = schema["paths"][path][method]["responses"][status]
    response.setdefault("links", {})[name] = link
