"""The command line: ``imgbatch run`` end to end and ``imgbatch db upgrade``."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from tests.helpers import IMGBATCH, csv_bytes
from tests.origin import Origin


def run_cli(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "IMGBATCH_DATA_DIR": str(data_dir), "IMGBATCH_WORKERS": "2", **env}
    return subprocess.run(
        [IMGBATCH, *args], env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def allow(photo_origin: Origin) -> dict[str, str]:
    return {"IMGBATCH_ALLOW_PRIVATE_NETWORKS": f"127.0.0.1:{photo_origin.port}"}


def test_run_writes_the_output_csv_and_exits_0(
    tmp_path: Path, photo_origin: Origin, photos: list[Path], allow: dict[str, str]
) -> None:
    urls = [photo_origin.url(f"/photos/{p.name}") for p in photos[:4]]
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", urls[:2]), (2, "SKU2", urls[2:])], bom=True))
    out = tmp_path / "out.csv"
    result = run_cli(["run", str(source), "-o", str(out)], tmp_path / "data", **allow)
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stderr and "4 of 4" in result.stderr
    text = out.read_text(encoding="utf-8")
    assert text.startswith("\ufeff")  # the input had a BOM
    rows = list(csv.reader(text.removeprefix("\ufeff").splitlines()))
    assert rows[0] == ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls"]
    assert all(len(r[3].split(",")) == 2 for r in rows[1:])
    stored = list((tmp_path / "data" / "images").rglob("*.jpg"))
    assert len(stored) == 4


def test_run_again_reuses_unchanged_images_and_says_so(
    tmp_path: Path, photo_origin: Origin, photos: list[Path], allow: dict[str, str]
) -> None:
    urls = [photo_origin.url(f"/photos/{p.name}") for p in photos[:3]]
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", urls)]))
    first = run_cli(["run", str(source)], tmp_path / "data", **allow)
    assert first.returncode == 0, first.stderr
    assert "(0 reused unchanged)" in first.stderr
    again = run_cli(["run", str(source)], tmp_path / "data", **allow)
    assert again.returncode == 0, again.stderr
    assert "3 of 3 images succeeded (3 reused unchanged)" in " ".join(again.stderr.split())


def test_run_exits_1_when_some_images_fail(
    tmp_path: Path, photo_origin: Origin, photos: list[Path], allow: dict[str, str]
) -> None:
    good = photo_origin.url(f"/photos/{photos[0].name}")
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", [good, photo_origin.url("/missing.jpg")])]))
    result = run_cli(["run", str(source)], tmp_path / "data", **allow)
    assert result.returncode == 1, result.stderr
    assert "completed_with_errors" in result.stderr and "http_error" in result.stderr
    rows = list(csv.reader((tmp_path / "in-output.csv").read_text().splitlines()))
    assert rows[1][3].endswith(",")  # the failed image leaves its place empty


def test_run_exits_2_for_an_invalid_csv_and_prints_every_error(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("S. No.,Product Name,Input Image Urls\n0,,ftp://x/1.jpg\n2,B,\n")
    result = run_cli(["run", str(source)], tmp_path / "data", COLUMNS="200")
    assert result.returncode == 2
    for fragment in ("rejected", "S. No.", "Product Name", "Input Image Urls"):
        assert fragment in result.stderr
    assert not (tmp_path / "in-output.csv").exists()


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = run_cli(["db", "upgrade"], tmp_path, IMGBATCH_DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"requests", "products", "images", "alembic_version"} <= tables
