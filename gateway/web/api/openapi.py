"""The OpenAPI 3.1 document, generated from the route declarations and the models' schemas.

Nothing here describes an operation by hand: paths, parameters, bodies and answers all come
from ``routing.ROUTES`` and pydantic (``models_json_schema``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway.web.api.models import ProblemDetails
from gateway.web.api.problems import KINDS, MEDIA_TYPE
from gateway.web.api.routing import INT32, Route

REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
HEADER_DOCS = {
    "If-Match": "the entry's ETag as last read: the write happens only if it is still current",
    "Idempotency-Key": "a retry with the same key returns the first answer and creates nothing",
    "ETag": "the entry's current version (a strong validator)",
    "Location": "the URL of what was created",
    "Content-Disposition": "the attachment's file name",
}


def document(routes: list[Route]) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ProblemDetails, "serialization")]
    for route in routes:
        if route.body is not None:
            wanted.append((route.body, "validation"))
        if route.response is not None:
            wanted.append((route.response, "serialization"))
    refs, definitions = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path, parameters = _path(route.path)
        operation: dict[str, Any] = {
            "operationId": route.operation_id, "summary": route.summary,
            "tags": [route.tag], "parameters": parameters + _query(route)
            + [_header(name) for name in route.request_headers],
            "responses": _responses(route, refs),
            "description": f"Needs a token of scope {route.scope}.",
        }
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": refs[(route.body, "validation")]}}}
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "crm-gateway API", "version": "1",
                 "description": "The CRM's diary, contacts and activity record. Errors are "
                                "RFC 9457 problem details; types: "
                                + ", ".join(sorted(KINDS)) + "."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "an API token (crm-gateway "
                                                          "api-tokens create)"}},
        },
    }


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    parameters: list[dict[str, Any]] = []

    def replace(found: re.Match[str]) -> str:
        converter, name = found.group(1), found.group(2)
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 1, "maximum": INT32} if converter == "int"
            else {"type": "string", "minLength": 1, "maxLength": 320})
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _PARAM.sub(replace, rule), parameters


def _query(route: Route) -> list[dict[str, Any]]:
    if route.query is None:
        return []
    schema = route.query.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required,
         "schema": _not_null(field),
         **({"description": field["description"]} if "description" in field else {})}
        for name, field in schema.get("properties", {}).items()
    ]


def _not_null(field: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: absent is its null, so drop the null alternative."""
    schema = {k: v for k, v in field.items() if k not in ("title", "description", "default")}
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    if field.get("default") is not None:
        schema["default"] = field["default"]
    return schema


def _header(name: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": HEADER_DOCS.get(name, "")}


def _responses(route: Route, refs: dict[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": route.summary}
    if route.response is not None:
        success["content"] = {"application/json": {
            "schema": refs[(route.response, "serialization")]}}
    elif route.media_type != "application/json":
        success["content"] = {route.media_type: {"schema": {"type": "string",
                                                            "format": "binary"}}}
    if route.response_headers:
        success["headers"] = {name: {"description": HEADER_DOCS.get(name, ""),
                                     "schema": {"type": "string"}}
                              for name in route.response_headers}
    problem = {"description": "a problem (RFC 9457)", "content": {
        MEDIA_TYPE: {"schema": refs[(ProblemDetails, "serialization")]}}}
    return {str(route.status): success, "default": problem}
