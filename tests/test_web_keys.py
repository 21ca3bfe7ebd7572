"""The web page with API keys set: keyed links go through fetch with the key, and a
refused webhook URL is reported as such."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.live import LiveServer, launch_chromium, live_server, require_chromium

KEY = "web-key-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("webkeys"), env={"IMGBATCH_API_KEYS": KEY}) as live:
        yield live


@pytest.fixture
def page(server: LiveServer) -> Iterator[Page]:
    require_chromium()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(base_url=server.base_url, accept_downloads=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/")
        page.get_by_text("API key", exact=True).click()  # opens the settings
        page.locator("#api-key").fill(KEY)
        page.get_by_role("button", name="Save key").click()
        yield page
        browser.close()
        assert not errors, errors


def test_sample_csv_downloads_with_the_key(page: Page, tmp_path: Path) -> None:
    with page.expect_download() as download:
        page.locator("#sample-link").click()
    saved = tmp_path / "sample.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "sample.csv"
    assert saved.read_text().startswith("S. No.,Product Name,Input Image Urls")


def test_a_refused_webhook_url_is_reported_as_a_webhook_error(page: Page, tmp_path: Path) -> None:
    body = tmp_path / "one.csv"
    body.write_text('S. No.,Product Name,Input Image Urls\n1,SKU1,"https://img.example/a.jpg"\n')
    page.locator("#csv-file").set_input_files(body)
    page.locator("#webhook-url").fill("http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Upload").click()
    errors = page.locator("#upload-errors")
    expect(errors).to_contain_text("The webhook URL was refused")
    expect(errors).to_contain_text("Webhook URL")
    expect(errors).not_to_contain_text("The CSV was rejected")
