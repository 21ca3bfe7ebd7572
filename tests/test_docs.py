"""The documents in docs/ stay true to the code: every route documented, every export and
rendered diagram current, every table column and status explained.

When one of these fails after a code change, run ``make docs`` and write what it cannot.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI

from imgbatch.api import create_app
from imgbatch.cli import openapi_json
from imgbatch.config import Settings
from imgbatch.db.models import Base, ImageStatus, RequestStatus, WebhookStatus

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DIAGRAMS = DOCS / "diagrams"
API_MD = DOCS / "api.md"
# FastAPI's helper page for OAuth2 logins in Swagger UI: nothing of ours.
UNDOCUMENTED = {("GET", "/docs/oauth2-redirect")}


def generator(name: str) -> ModuleType:
    """One of the docs/generate_*.py scripts, imported as a module."""
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("data")), work=False)


def _routes(routes: Iterable[Any]) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, hidden ones included, through included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI's lazily included router
        if inner is not None:
            yield from _routes(inner.routes)
        elif getattr(route, "methods", None):
            path = re.sub(r":\w+}", "}", route.path)  # "/files/{key:path}" -> "/files/{key}"
            for method in route.methods - {"HEAD"}:
                yield method, path
        elif hasattr(route, "path") and hasattr(route, "app"):  # a mount: static files
            yield "GET", route.path + "/{path}"


def served(app: FastAPI) -> set[tuple[str, str]]:
    in_schema = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    found = set(_routes(app.routes))
    # The walk must see at least what the schema lists, or it is blind, not passing.
    assert in_schema <= found, sorted(in_schema - found)
    return found - UNDOCUMENTED


def test_every_route_is_in_api_md(app: FastAPI) -> None:
    text = API_MD.read_text()
    missing = sorted(f"{m} {p}" for m, p in served(app) if f"`{m} {p}`" not in text)
    assert not missing, f"routes with no section in docs/api.md: {missing}"


def test_every_api_md_example_was_captured() -> None:
    text = API_MD.read_text()
    blocks = re.findall(r"<!-- example: ([a-z0-9-]+) -->\n(.*?)<!-- /example -->", text, re.S)
    assert len(blocks) >= 25
    empty = [name for name, body in blocks if not body.startswith("```console\n$ ")]
    # webhook-delivery shows what a receiver got, not a command.
    assert empty in ([], ["webhook-delivery"]), f"run `make docs` to capture {empty}"


def test_openapi_json_is_current(app: FastAPI) -> None:
    committed = (DOCS / "openapi.json").read_text()
    assert committed == openapi_json(app.openapi()), (
        "docs/openapi.json is stale: run `make docs` (or `imgbatch openapi -o docs/openapi.json`)"
    )


def test_postman_collection_is_current() -> None:
    committed = (DOCS / "postman_collection.json").read_text()
    assert committed == generator("generate_postman").collection_json(), (
        "docs/postman_collection.json differs from docs/generate_postman.py: run `make docs`"
    )


def test_postman_collection_calls_every_api_route(app: FastAPI) -> None:
    collection = json.loads((DOCS / "postman_collection.json").read_text())
    calls = set()
    for folder in collection["item"]:
        for item in folder["item"]:
            url = item["request"]["url"].removeprefix("{{baseUrl}}").split("?")[0]
            calls.add((item["request"]["method"], re.sub(r"{{\w+}}", "ID", url)))
    api = {(m, p) for m, p in served(app) if p.startswith("/api/")}
    missing = sorted(
        f"{method} {path}"
        for method, path in api
        if not any(
            m == method and re.fullmatch(re.sub(r"{\w+}", "[^/]+", path), url) for m, url in calls
        )
    )
    assert not missing, f"API routes the Postman collection never calls: {missing}"


def test_diagrams_are_rendered_from_their_current_source() -> None:
    sources = sorted(DIAGRAMS.glob("*.dot"))
    assert {s.stem for s in sources} >= {"architecture", "schema", "request_states"}
    for source in sources:
        svg = source.with_suffix(".svg")
        assert svg.exists(), f"{svg.name} is missing: run `make docs`"
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        assert f"<!-- source-sha256: {digest} -->" in svg.read_text(), (
            f"{svg.name} was rendered from an older {source.name}: run `make docs`"
        )


def test_schema_diagram_matches_the_models() -> None:
    assert (DIAGRAMS / "schema.dot").read_text() == generator("generate_diagrams").schema_dot(), (
        "the models changed: run `make docs` and describe the change in docs/design.md"
    )


def test_state_diagrams_show_every_status() -> None:
    for source, statuses in (
        ("request_states.dot", RequestStatus),
        ("image_states.dot", ImageStatus),
    ):
        nodes = set(re.findall(r"^\s*(\w+)\s*[\[;]", (DIAGRAMS / source).read_text(), re.M))
        assert {s.value for s in statuses} <= nodes, f"{source} lacks a status"


def test_design_md_explains_every_table_column_and_status() -> None:
    text = (DOCS / "design.md").read_text()
    for table in Base.metadata.sorted_tables:
        assert f"`{table.name}`" in text, f"design.md does not describe table {table.name}"
        for column in table.columns:
            assert f"`{column.name}`" in text, (
                f"design.md does not explain {table.name}.{column.name}"
            )
        for index in table.indexes:
            assert f"`{index.name}`" in text, f"design.md does not explain index {index.name}"
    for status in (*RequestStatus, *ImageStatus, *WebhookStatus):
        assert f"`{status.value}`" in text


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_relative_links_in_docs_resolve() -> None:
    for page in DOCS.glob("*.md"):
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            if "://" in target:
                continue
            linked = page.parent / target if target else page
            assert linked.exists(), f"{page.name} links to missing {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked), f"{page.name} links to missing #{anchor}"
