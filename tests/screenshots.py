"""Screenshots of the web page for docs/web.md: ``python -m tests.screenshots``.

Starts a live server and a deliberately slow origin on loopback serving the test photos,
uploads a CSV through the page and photographs it mid-run (``running.png``) and once
finished (``finished.png``). One URL of the CSV is missing on the origin, so the finished
picture shows how a failed image and its reason look.
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.live import CHROMIUM, launch_chromium, live_server
from tests.origin import Origin

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data" / "photos"
OUT = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 1000}
PRODUCTS = [
    "Espresso cup, ceramic",
    "Tabby cat poster",
    "Launch pad print",
    "Astronaut figurine",
    "Red motorcycle, 1:18",
    "Retina art print",
    "Deep field canvas",
    "Motorcycle, left view",
    "Coffee sampler",
    "Night launch poster",
    "Cat & coffee mug",
    "Space explorer set",
    "Touring bike model",
    "Observatory print",
]
IMAGES_PER_PRODUCT = 5
ORIGIN_DELAY = 1.2  # seconds per image: slow enough to catch the run half-way


def write_csv(path: Path, origin: Origin, photos: list[Path]) -> None:
    """Products with distinct image URLs (each one fetched), and one missing image."""
    rows = [["S. No.", "Product Name", "Input Image Urls"]]
    for serial, name in enumerate(PRODUCTS, start=1):
        urls = []
        for index in range(IMAGES_PER_PRODUCT):
            photo = photos[(serial + index) % len(photos)]
            urls.append(origin.serve_file(f"/catalog/{serial}/{index + 1}-{photo.name}", photo))
        rows.append([str(serial), name, ",".join(urls)])
    rows[1][2] += "," + origin.url("/catalog/1/discontinued.jpg")  # 404: a failed image
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)


def wait_for_thumbnails(page: Page) -> None:
    """Until every thumbnail in view has loaded (or failed), so none shows half-drawn."""
    for _ in range(100):
        pending = page.evaluate(
            "[...document.querySelectorAll('#products img')]"
            ".filter(i => i.getBoundingClientRect().top < innerHeight && !i.complete).length"
        )
        if not pending:
            return
        time.sleep(0.1)


def take(out: Path) -> None:
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: run `make browser` first")
    out.mkdir(parents=True, exist_ok=True)
    photos = sorted(PHOTOS.glob("*.jpg"))
    origin = Origin().start()
    try:
        with (
            tempfile.TemporaryDirectory() as scratch,
            live_server(Path(scratch) / "data", allow=[f"127.0.0.1:{origin.port}"]) as server,
            sync_playwright() as playwright,
        ):
            csv_file = Path(scratch) / "catalog.csv"
            write_csv(csv_file, origin, photos)
            browser = launch_chromium(playwright)
            page = browser.new_page(
                base_url=server.base_url, viewport=VIEWPORT, locale="en-US", color_scheme="light"
            )
            page.goto("/")
            with page.expect_file_chooser() as chooser:
                page.locator("#dropzone").click()
            chooser.value.set_files(csv_file)
            origin.delay = ORIGIN_DELAY
            page.get_by_role("button", name="Upload").click()

            # Mid-run: the speed and the time left are known, about half is done.
            expect(page.locator("#stat-eta")).to_have_text(re.compile("^about"), timeout=60_000)
            progress = page.locator("#progress")
            total = int(progress.get_attribute("max") or 1)
            deadline = time.monotonic() + 60
            while int(page.evaluate("document.querySelector('#progress').value")) < total * 0.4:
                if time.monotonic() > deadline:
                    raise SystemExit("the run never reached 40 %")
                time.sleep(0.1)
            page.wait_for_timeout(2200)  # a products refresh, so finished thumbnails show
            wait_for_thumbnails(page)
            page.screenshot(path=out / "running.png")

            origin.delay = 0
            expect(page.locator("#request-status")).to_have_text(
                "completed with errors", timeout=60_000
            )
            page.wait_for_timeout(500)
            wait_for_thumbnails(page)
            page.screenshot(path=out / "finished.png")
            browser.close()
    finally:
        origin.stop()
    print(f"wrote {out / 'running.png'} and {out / 'finished.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the PNG files")
    take(parser.parse_args().out)


if __name__ == "__main__":
    main()
