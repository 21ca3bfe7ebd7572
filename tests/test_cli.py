"""The command line: ``imgbatch run`` end to end and ``imgbatch db upgrade``."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import openpyxl
import pytest
from PIL import Image
from sqlalchemy import create_engine, inspect, text

from imgbatch.options import equivalent_quality
from tests.helpers import IMGBATCH, csv_bytes, quantization_of, reference_quantization
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
    assert "3 of 3 images succeeded," in first.stderr and "reused" not in first.stderr
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


def test_run_reads_a_workbook_and_writes_a_csv_beside_it(
    tmp_path: Path, photo_origin: Origin, photos: list[Path], allow: dict[str, str]
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["S. No.", "Product Name", "Input Image Urls"])
    sheet.append([1.0, "SKU1", photo_origin.url(f"/photos/{photos[0].name}")])
    book.save(tmp_path / "catalogue.xlsx")
    result = run_cli(["run", str(tmp_path / "catalogue.xlsx")], tmp_path / "data", **allow)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "catalogue-output.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(text.removeprefix("\ufeff").splitlines()))
    assert text.startswith("\ufeff")
    assert [row[:2] for row in rows] == [["S. No.", "Product Name"], ["1", "SKU1"]]


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


# -- output options (SPEC §10) ---------------------------------------------------------------


def stored_outputs(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "images").rglob("*") if p.is_file())


def test_run_flags_choose_format_quality_and_max_size(
    tmp_path: Path, photo_origin: Origin, photos: list[Path], allow: dict[str, str]
) -> None:
    urls = [photo_origin.url(f"/photos/{p.name}") for p in photos[:2]]
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", urls)]))
    args = ["run", str(source), "--format", "webp", "--quality", "70", "--max-size", "300"]
    result = run_cli(args, tmp_path / "data", **allow)
    assert result.returncode == 0, result.stderr
    stored = stored_outputs(tmp_path / "data")
    assert [p.name.split("-", 1)[1] for p in stored] == ["webp-q70-max300.webp"] * 2
    for path in stored:
        data = path.read_bytes()
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
        assert max(Image.open(path).size) == 300
    rows = list(csv.reader((tmp_path / "in-output.csv").read_text().splitlines()))
    assert all(url.endswith("-webp-q70-max300.webp") for url in rows[1][3].split(","))


def test_run_quality_80_gives_jpeg_q80_tables(
    tmp_path: Path, photo_origin: Origin, photos: list[Path], allow: dict[str, str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", [photo_origin.url(f"/photos/{photos[0].name}")])]))
    result = run_cli(["run", str(source), "--quality", "80"], tmp_path / "data", **allow)
    assert result.returncode == 0, result.stderr
    [path] = stored_outputs(tmp_path / "data")
    assert path.name.endswith("-jpeg-q80.jpg")
    assert quantization_of(path.read_bytes()) == reference_quantization(80)
    assert Image.open(path).size == Image.open(photos[0]).size


def test_run_takes_its_defaults_from_the_environment(
    tmp_path: Path, photo_origin: Origin, photos: list[Path], allow: dict[str, str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", [photo_origin.url(f"/photos/{photos[0].name}")])]))
    env = {**allow, "IMGBATCH_FORMAT": "avif", "IMGBATCH_MAX_SIZE": "120"}
    result = run_cli(["run", str(source)], tmp_path / "data", **env)
    assert result.returncode == 0, result.stderr
    [path] = stored_outputs(tmp_path / "data")
    assert path.name.endswith(f"-avif-q{equivalent_quality(50, 'avif')}-max120.avif")
    data = path.read_bytes()
    assert data[4:12] == b"ftypavif"
    assert max(Image.open(path).size) == 120


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--quality", "0"),
        ("--quality", "96"),
        ("--quality", "fine"),
        ("--format", "png"),
        ("--max-size", "15"),
        ("--max-size", "16385"),
        ("--max-size", "big"),
    ],
)
def test_run_exits_2_for_an_invalid_option_and_stores_nothing(
    tmp_path: Path, photo_origin: Origin, allow: dict[str, str], flag: str, value: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(csv_bytes([(1, "SKU1", [photo_origin.url("/photos/x.jpg")])]))
    result = run_cli(["run", str(source), flag, value], tmp_path / "data", **allow)
    assert result.returncode == 2, result.stderr
    assert flag in result.stderr
    assert not (tmp_path / "in-output.csv").exists()
    database = tmp_path / "data" / "imgbatch.db"
    if database.exists():
        with create_engine(f"sqlite:///{database}").connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM requests")).scalar() == 0
