"""/docs and /redoc render in Chromium from files the package ships: no other host is asked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, Route, expect, sync_playwright

from tests.live import LiveServer, launch_chromium, live_server, require_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("docs")) as live:
        yield live


# What each page shows once its script has run and rendered the OpenAPI document.
RENDERED: dict[str, Callable[[Page], Locator]] = {
    "/docs": lambda page: page.locator(
        ".swagger-ui .opblock-summary-path", has_text="/api/v1/webhook-secret"
    ),
    "/redoc": lambda page: page.get_by_role("heading", name="Webhook Secret"),
}


@pytest.mark.parametrize("path", sorted(RENDERED))
def test_api_docs_render_offline(server: LiveServer, path: str) -> None:
    require_chromium()
    elsewhere: list[str] = []
    ours = urlsplit(server.base_url).netloc

    def only_ours(route: Route) -> None:
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.route("**/*", only_ours)
            page.goto(server.url(path))
            expect(RENDERED[path](page).first).to_be_visible(timeout=20_000)
        finally:
            browser.close()
    assert elsewhere == [], f"{path} asked other hosts: {elsewhere}"


def test_the_shipped_files_carry_their_licence() -> None:
    import fastapi_offline

    package = Path(fastapi_offline.__file__).parent
    assert (package / "static" / "swagger-ui-bundle.js").stat().st_size > 100_000
    (licence,) = package.parent.glob("fastapi_offline-*.dist-info/licenses/LICENSE")
    assert "MIT" in licence.read_text()
