"""The end-of-run summary of ``imgbatch run``, as a log file (not a terminal) gets it."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.cli import run_cli
from tests.helpers import csv_bytes
from tests.origin import Origin

FAILURES = 25


def test_every_failure_is_accounted_for_and_no_url_is_cut(tmp_path: Path, origin: Origin) -> None:
    long_path = "/" + "a-rather-long-catalogue-folder-name/" * 4
    urls = [origin.url(f"{long_path}missing-{i}.jpg") for i in range(FAILURES)]
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(i + 1, f"SKU{i}", [url]) for i, url in enumerate(urls)]))
    allow = {"IMGBATCH_ALLOW_PRIVATE_NETWORKS": f"127.0.0.1:{origin.port}"}
    result = run_cli(["run", str(source)], tmp_path / "data", COLUMNS="80", **allow)
    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert err.startswith(f"failed: 0 of {FAILURES} images succeeded, {FAILURES} failed")
    assert "smaller" not in err  # nothing succeeded: no savings to speak of
    assert "images: " not in err
    shown = [line for line in err.splitlines() if line.startswith("  line ")]
    assert len(shown) == 20
    for line, url in zip(shown, urls, strict=False):
        assert f"{url}: http_error" in line  # whole, though far wider than 80 columns
    assert f"  … and {FAILURES - 20} more" in err
    assert f"output CSV: {(tmp_path / 'in-output.csv').resolve()}" in err
    errors_file = (tmp_path / "in-output-errors.csv").resolve()
    assert err.rstrip().endswith(f"ready to fix and run again): {errors_file}")
    rows = list(csv.reader(errors_file.read_text(encoding="utf-8").splitlines()))
    assert rows[0][-1] == "Errors" and len(rows) == FAILURES + 1  # every one, not 20
    assert [row[2] for row in rows[1:]] == urls


def test_a_successful_run_says_where_its_images_are(
    tmp_path: Path, photo_origin: Origin, photos: list[Path]
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", [photo_origin.url(f"/photos/{photos[0].name}")])]))
    allow = {"IMGBATCH_ALLOW_PRIVATE_NETWORKS": f"127.0.0.1:{photo_origin.port}"}
    data = tmp_path / "data"
    result = run_cli(["run", str(source)], data, IMGBATCH_PUBLIC_URL="https://img.test", **allow)
    assert result.returncode == 0, result.stderr
    assert "completed: 1 of 1 images succeeded, 0 failed" in result.stderr
    assert "% smaller than input" in result.stderr
    [images_line] = [line for line in result.stderr.splitlines() if line.startswith("images: ")]
    folder = images_line.removeprefix("images: ").split(" ", 1)[0]
    assert Path(folder).parent == (data / "images").resolve()
    assert any(Path(folder).iterdir())
    assert f"served under https://img.test/files/{Path(folder).name}/" in images_line
    assert "errors file" not in result.stderr
    assert not (tmp_path / "in-output-errors.csv").exists()
