"""The web page in a real browser (headless Chromium) against a live server."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Error, Page, Route, expect, sync_playwright

from tests.helpers import csv_bytes, wait_terminal, wait_until
from tests.live import LiveServer, launch_chromium, live_server, require_chromium
from tests.origin import Origin, slow

SLOW = 30_000  # ms: a whole request, start to end
# The page writes ranges and savings the typographic way.
DASH = "\u2013"
MINUS = "\u2212"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def photo_host(photos: list[Path]) -> Iterator[Origin]:
    """An origin on loopback with every corpus photo at /photos/<name>; tests slow it down."""
    origin = Origin().start()
    for photo in photos:
        origin.serve_file(f"/photos/{photo.name}", photo)
    yield origin
    origin.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, photo_host: Origin) -> Iterator[LiveServer]:
    with live_server(
        tmp_path_factory.mktemp("web"), allow=[f"127.0.0.1:{photo_host.port}"]
    ) as live:
        yield live


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def page(browser: Browser, server: LiveServer, photo_host: Origin) -> Iterator[Page]:
    """A fresh browser context; any uncaught error in the page's scripts fails the test."""
    photo_host.delay = 0
    context = browser.new_context(
        base_url=server.base_url,
        viewport={"width": 1280, "height": 900},
        locale="en-US",
        accept_downloads=True,
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"the page's scripts failed: {errors}"


def upload_through_page(page: Page, csv_file: Path) -> str:
    """Pick the file with the drop zone's file chooser, upload it, return the request id."""
    with page.expect_file_chooser() as chooser:
        page.locator("#dropzone").click()
    chooser.value.set_files(csv_file)
    expect(page.locator("#csv-file-name")).to_contain_text(csv_file.name)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"#/requests/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([["S. No.", "Product Name", "Input Image Urls"], *rows])
    return path


def loaded_images(page: Page, selector: str) -> list[int]:
    """naturalWidth of every image matching ``selector``, once each has loaded."""
    images = page.locator(selector)
    for index in range(images.count()):
        images.nth(index).scroll_into_view_if_needed()  # they load lazily
    script = f"[...document.querySelectorAll({selector!r})].map(i => i.complete && i.naturalWidth)"

    def widths() -> list[int] | None:
        found: list[int] = page.evaluate(script)
        return found if all(found) else None

    loaded: list[int] = wait_until(widths, timeout=15)
    return loaded


def test_sample_upload_progress_thumbnails_and_output_csv(
    page: Page, server: LiveServer, api: httpx.Client, tmp_path: Path
) -> None:
    sample = tmp_path / "sample.csv"
    sample.write_bytes(api.get("/api/v1/sample.csv").content)
    page.goto("/")
    sample_link = page.get_by_role("link", name="Download the sample CSV")
    expect(sample_link).to_have_attribute("href", "/api/v1/sample.csv")
    expect(page.get_by_role("link", name="API docs")).to_have_attribute("href", "/docs")

    request_id = upload_through_page(page, sample)
    expect(page.locator("#request-id")).to_have_text(request_id)
    expect(page.locator("#progress-percent")).to_have_text("100 %", timeout=SLOW)
    expect(page.locator("#request-status")).to_have_text("completed")
    expect(page.locator("#progress-label")).to_contain_text("6 of 6 images done")

    # Input and output side by side, every thumbnail decoded.
    expect(page.locator("#products img.input")).to_have_count(6)
    expect(page.locator("#products img.output")).to_have_count(6)
    assert all(width > 0 for width in loaded_images(page, "#products img"))

    # Bytes before and after, per image and in total, and the saving.
    status = api.get(f"/api/v1/requests/{request_id}").json()
    assert status["output_bytes"] < status["input_bytes"]
    saved = round((1 - status["output_bytes"] / status["input_bytes"]) * 100)
    expect(page.locator("#stat-saved")).to_have_text(f"{saved} % smaller")
    expect(page.locator("#products .saving")).to_have_count(6)
    for text in page.locator("#products .saving").all_text_contents():
        assert re.fullmatch(rf" {MINUS}\d+ %", text), text

    with page.expect_download() as download:
        page.get_by_role("link", name="Download output CSV").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls"]
    assert [len(row) for row in rows] == [4, 4, 4]
    for row in rows[1:]:
        outputs = row[3].split(",")
        assert len(outputs) == len(row[2].split(",")) == 3
        assert all(url.startswith(server.url("/files/")) for url in outputs)
    assert api.get(outputs[0]).headers["content-type"] == "image/jpeg"

    # The address keeps the request: a reload shows it again, and the recent list marks it.
    page.reload()
    expect(page.locator("#request-id")).to_have_text(request_id)
    expect(page.locator("#request-status")).to_have_text("completed")
    current = page.locator(f'#recent-list a[data-id="{request_id}"]')
    expect(current).to_have_attribute("aria-current", "page")


def test_live_speed_time_left_cancel_and_resume(
    page: Page, photo_host: Origin, photos: list[Path], tmp_path: Path
) -> None:
    photo_host.delay = 0.6
    # Enough images that the request still runs when the first chunks (of 32) are recorded.
    rows = [
        [str(n), f"SKU{n}", ",".join(photo_host.url(f"/photos/{p.name}?n={n}") for p in photos[:2])]
        for n in range(1, 101)
    ]
    page.goto("/")
    upload_through_page(page, write_csv(tmp_path / "slow.csv", rows))

    expect(page.locator("#stat-rate")).to_have_text(re.compile(r"images/s$"), timeout=SLOW)
    expect(page.locator("#stat-eta")).to_have_text(re.compile(r"^about \d"))
    assert page.evaluate("document.querySelector('#progress').value") < 80
    # A finished image keeps its element (and its thumbnails) through every later refresh.
    expect(page.locator("#products .image.status-succeeded").first).to_be_visible()
    page.evaluate("window.kept = document.querySelector('#products .image.status-succeeded')")

    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#request-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    assert page.evaluate("document.querySelector('#progress').value") < 80

    photo_host.delay = 0
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#request-status")).to_have_text("completed", timeout=SLOW)
    expect(page.locator("#progress-percent")).to_have_text("100 %")
    expect(page.get_by_role("button", name="Resume")).to_be_hidden()
    expect(page.locator("#products .image.status-succeeded")).to_have_count(40)  # one page
    expect(page.locator("#products .product")).to_have_count(20)
    assert page.evaluate("window.kept.isConnected && window.kept.closest('#products') !== null")


def test_failed_image_shows_its_reason_and_retry_fixes_it(
    page: Page, photo_host: Origin, photos: list[Path], tmp_path: Path
) -> None:
    good = photo_host.url(f"/photos/{photos[0].name}?retry")
    late = photo_host.url("/late.jpg")
    page.goto("/")
    upload_through_page(page, write_csv(tmp_path / "late.csv", [["1", "SKU1", f"{good},{late}"]]))

    expect(page.locator("#request-status")).to_have_text("completed with errors", timeout=SLOW)
    failed = page.locator("#products .image.status-failed")
    expect(failed).to_have_count(1)
    expect(failed.locator(".error-code")).to_have_text("http_error")
    expect(failed).to_contain_text("404")
    expect(page.locator("#stat-failed")).to_have_text("1")
    expect(page.locator("#request-size")).to_have_text("· 1 product, 2 images")
    expect(page.locator("#products .product-summary")).to_contain_text("2 images · 1 failed")

    # The errors file sits next to the output CSV: the failed row, its URL and reason.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download errors file").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    assert rows == [
        ["S. No.", "Product Name", "Input Image Urls", "Errors"],
        ["1", "SKU1", late, f"{late}: http_error: the server answered 404 Not Found"],
    ]

    photo_host.serve_file("/late.jpg", photos[1])
    page.get_by_role("button", name="Retry failed images").click()
    expect(page.locator("#request-status")).to_have_text("completed", timeout=SLOW)
    expect(page.locator("#products .image.status-succeeded")).to_have_count(2)
    expect(failed).to_have_count(0)
    expect(page.get_by_role("link", name="Download errors file")).to_be_hidden()


def test_rejected_csv_lists_every_error_with_its_line(
    page: Page, api: httpx.Client, tmp_path: Path
) -> None:
    body = (
        b"S. No.,Product Name,Input Image Urls\n"
        b"1,SKU1,https://img.example/a.jpg\n"
        b"x,,ftp://img.example/b.jpg\n"
        b"1,SKU3,\n"
    )
    before = api.get("/api/v1/requests").json()["total"]
    answer = api.post("/api/v1/requests", files={"file": ("bad.csv", body, "text/csv")})
    assert answer.status_code == 422
    expected = answer.json()["detail"]["errors"]
    (tmp_path / "bad.csv").write_bytes(body)

    page.goto("/")
    with page.expect_file_chooser() as chooser:
        page.locator("#dropzone").click()
    chooser.value.set_files(tmp_path / "bad.csv")
    page.get_by_role("button", name="Upload").click()

    errors = page.locator("#upload-errors")
    expect(errors).to_be_visible()
    expect(errors.locator("li")).to_have_count(len(expected))
    for index, problem in enumerate(expected):
        item = errors.locator("li").nth(index)
        expect(item).to_contain_text(f"Line {problem['line']}")
        expect(item).to_contain_text(problem["message"])
    assert {p["line"] for p in expected} == {3, 4}
    assert "#/requests/" not in page.url

    # A file that is not a CSV at all: the server's reason, in words.
    (tmp_path / "photo.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    page.locator("#csv-file").set_input_files(tmp_path / "photo.csv")
    page.get_by_role("button", name="Upload").click()
    expect(errors).to_contain_text("cannot be read as a CSV")
    assert api.get("/api/v1/requests").json()["total"] == before


def test_markup_in_a_product_name_is_shown_as_text(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    name = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    photo = server.url("/samples/chelsea.jpg")
    response = page.goto("/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]

    upload_through_page(page, write_csv(tmp_path / "markup.csv", [["1", name, photo]]))
    expect(page.locator("#request-status")).to_have_text("completed", timeout=SLOW)
    expect(page.locator("#products .product-name")).to_have_text(name)
    expect(page.locator("#products img")).to_have_count(2)  # the thumbnails, nothing else
    assert page.locator("#products script").count() == 0
    assert page.evaluate("window.pwned") is None

    # Defence in depth: the page's policy refuses inline script even if markup got in.
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', "
        "'<img id=probe src=/nothing onerror=\"window.pwned = 3\">')"
    )
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None


def test_narrow_screen_labels_and_keyboard(
    page: Page, api: httpx.Client, server: LiveServer
) -> None:
    sample = api.get("/api/v1/sample.csv").content
    answer = api.post("/api/v1/requests", files={"file": ("sample.csv", sample, "text/csv")})
    request_id = answer.json()["request_id"]
    wait_terminal(api, request_id, timeout=SLOW / 1000)

    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(f"/#/requests/{request_id}")
    expect(page.locator("#request-status")).to_have_text("completed")
    expect(page.locator("#products img.output")).to_have_count(6)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways on a phone: {width}"

    # Every field has a label; the drop zone is the file input's label.
    expect(page.get_by_label("Webhook URL")).to_have_attribute("id", "webhook-url")
    expect(page.get_by_label(re.compile("Choose a CSV file"))).to_have_attribute("id", "csv-file")

    # The file input is reached by Tab, and its drop zone shows the focus.
    page.goto("/")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "csv-file":
            break
    else:
        pytest.fail("Tab never reaches the file input")
    outline = page.evaluate("getComputedStyle(document.querySelector('#dropzone')).outlineStyle")
    assert outline == "solid"


def test_a_request_of_100000_images_stays_paginated(page: Page, api: httpx.Client) -> None:
    # Port 9 is neither allowed for the server nor open to the browser: nothing is fetched.
    rows = [
        (n, f"SKU{n}", [f"http://127.0.0.1:9/p{n}/{i}.jpg" for i in range(5)])
        for n in range(1, 20_001)
    ]
    answer = api.post("/api/v1/requests", files={"file": ("big.csv", csv_bytes(rows), "text/csv")})
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["request_id"]
    assert answer.json()["total_images"] == 100_000
    api.post(f"/api/v1/requests/{request_id}/cancel")

    page.goto(f"/#/requests/{request_id}")
    products_range = page.locator("#products-range")
    expect(products_range).to_have_text(f"Products 1{DASH}20 of 20,000")
    expect(page.locator("#page-count")).to_have_text("of 1,000")
    assert page.evaluate("document.getElementsByTagName('*').length") < 2500

    page.locator("#page-number").fill("1000")
    page.locator("#page-number").press("Enter")
    expect(products_range).to_have_text(f"Products 19,981{DASH}20,000 of 20,000")
    expect(page.locator("#products .serial").first).to_have_text("#19981")
    page.get_by_role("button", name="Previous").click()
    expect(products_range).to_have_text(f"Products 19,961{DASH}19,980 of 20,000")
    expect(page.locator("#products .product")).to_have_count(20)
    assert page.evaluate("document.getElementsByTagName('*').length") < 2500


def unreachable_request(api: httpx.Client, host: Origin, rows: list[tuple[int, str, int]]) -> str:
    """A request of (serial, name, image count) rows, cancelled at once and left terminal
    with every image cancelled: the origin holds each image for seconds, so none can
    finish (nor fail) before the cancel lands."""
    held = uuid.uuid4().hex
    products = [
        (
            serial,
            name,
            [host.route(f"/held/{held}/{serial}/{i}.jpg", slow(b"", 5)) for i in range(images)],
        )
        for serial, name, images in rows
    ]
    answer = api.post(
        "/api/v1/requests", files={"file": ("u.csv", csv_bytes(products), "text/csv")}
    )
    assert answer.status_code == 202, answer.text
    request_id: str = answer.json()["request_id"]
    api.post(f"/api/v1/requests/{request_id}/cancel")
    wait_terminal(api, request_id)
    return request_id


class HeldAnswers:
    """Holds the page's calls whose URL matches, until ``release`` lets them answer late."""

    def __init__(self, page: Page, pattern: re.Pattern[str]) -> None:
        self.routes: list[Route] = []
        page.route(pattern, self.hold)

    def hold(self, route: Route) -> None:
        self.routes.append(route)

    def wait(self, count: int = 1) -> None:
        wait_until(lambda: len(self.routes) >= count, timeout=10)

    def release(self) -> None:
        for route in self.routes:
            with contextlib.suppress(Error):  # the page aborted it: as good as ignoring it
                route.fulfill(response=route.fetch())


def test_switching_requests_quickly_shows_only_the_latest(
    page: Page, api: httpx.Client, photo_host: Origin
) -> None:
    first = unreachable_request(api, photo_host, [(1, "FIRST-A", 3), (2, "FIRST-B", 3)])
    second = unreachable_request(api, photo_host, [(1, "SECOND", 1)])
    held = HeldAnswers(page, re.compile(rf"/api/v1/requests/{first}(/products\?.*)?$"))

    page.goto(f"/#/requests/{first}")
    held.wait(2)  # its status and its products, both still unanswered
    page.evaluate(f"window.location.hash = '#/requests/{second}'")
    expect(page.locator("#request-size")).to_have_text("· 1 product, 1 image")

    # The first request's answers arrive after the switch: nothing of them may show.
    held.release()
    page.wait_for_timeout(1500)
    expect(page.locator("#request-id")).to_have_text(second)
    expect(page.locator("#request-size")).to_have_text("· 1 product, 1 image")
    expect(page.locator("#products .product-name")).to_have_text(["SECOND"])
    expect(page.locator("#products .image")).to_have_count(1)
    assert page.title() == "cancelled · imgbatch"


def test_paging_quickly_shows_only_the_latest_page(
    page: Page, api: httpx.Client, photo_host: Origin
) -> None:
    request_id = unreachable_request(api, photo_host, [(n, f"SKU{n}", 1) for n in range(1, 71)])
    page.goto(f"/#/requests/{request_id}")
    products_range = page.locator("#products-range")
    expect(products_range).to_have_text(f"Products 1{DASH}20 of 70")

    held = HeldAnswers(page, re.compile(r"/products\?offset=20&"))
    page.get_by_role("button", name="Next").click()
    held.wait()
    page.get_by_role("button", name="Next").click()
    expect(products_range).to_have_text(f"Products 41{DASH}60 of 70")

    held.release()  # page 2 answers last
    page.wait_for_timeout(1000)
    expect(products_range).to_have_text(f"Products 41{DASH}60 of 70")
    expect(page.locator("#products .serial").first).to_have_text("#41")
    expect(page.locator("#products .product")).to_have_count(20)
    expect(page.locator("#page-number")).to_have_value("3")


def test_a_long_product_shows_its_first_images_until_asked(
    page: Page, api: httpx.Client, photo_host: Origin
) -> None:
    request_id = unreachable_request(api, photo_host, [(1, "MANY", 14), (2, "ONE", 1)])
    page.goto(f"/#/requests/{request_id}")
    expect(page.locator("#request-size")).to_have_text("· 2 products, 15 images")
    # The list loads after the status: wait for it (all() does not).
    expect(page.locator("#products .product")).to_have_count(2)
    many, one = page.locator("#products .product").all()
    expect(one.locator(".product-summary")).to_have_text("1 image")
    expect(many.locator(".product-summary")).to_have_text("14 images")
    expect(many.locator(".image")).to_have_count(12)
    first_cell = "document.querySelector('#products .product .image')"
    page.evaluate(f"window.kept = {first_cell}")

    many.get_by_role("button", name="Show all 14 images").click()
    expect(many.locator(".image")).to_have_count(14)
    expect(many.get_by_role("button", name="Show all 14 images")).to_be_hidden()
    expect(one.locator(".image")).to_have_count(1)
    assert page.evaluate(f"window.kept === {first_cell}")  # shown images kept, not rebuilt
