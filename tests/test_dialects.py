"""Uploads as catalogue teams really have them, through the API: semicolons, tabs,
UTF-16, Excel workbooks; the output CSV keeps the input's dialect (SPEC §1, §4)."""

from __future__ import annotations

import csv
import functools
import io
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from tests.apps import Service
from tests.helpers import wait_terminal
from tests.origin import Origin

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MiB = 1024 * 1024


@pytest.fixture
def start(embedded: Service) -> Service:
    """The embedded app with a single worker."""
    return functools.partial(embedded, workers=1)


def upload(client: TestClient, body: bytes, name: str = "products.csv") -> Any:
    kind = XLSX_TYPE if name.endswith(".xlsx") else "text/csv"
    return client.post("/api/v1/requests", files={"file": (name, body, kind)})


def output_of(client: TestClient, body: bytes, name: str = "products.csv") -> bytes:
    response = upload(client, body, name)
    assert response.status_code == 202, response.text
    status = wait_terminal(client, response.json()["request_id"])
    assert status["status"] == "completed", status
    assert status["errors_csv_url"] is None  # nothing failed
    out = client.get(f"/api/v1/requests/{status['request_id']}/output.csv")
    assert out.status_code == 200
    return out.content


def photo(origin: Origin, photos: list[Path], index: int) -> str:
    return origin.url(f"/photos/{photos[index % len(photos)].name}")


# --- text dialects ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "delimiter", "newline"),
    [
        pytest.param("utf-8-sig", ";", "\r\n", id="semicolon-utf8-bom"),
        pytest.param("utf-8", "\t", "\n", id="tab-utf8"),
        pytest.param("utf-16-le", "\t", "\r\n", id="tab-utf16-le-bom"),
        pytest.param("utf-16-be", ",", "\r\n", id="comma-utf16-be-bom"),
    ],
)
def test_each_text_dialect_gives_an_output_in_the_same_dialect(
    start: Service,
    photo_origin: Origin,
    photos: list[Path],
    encoding: str,
    delimiter: str,
    newline: str,
) -> None:
    urls = [photo(photo_origin, photos, i) for i in range(3)]
    header = ["Serial No", "Product Name", "Input Image URLs"]
    rows = [["1", "Mug, blue", ",".join(urls[:2])], ["2.", "Tee", urls[2]]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows([header, *rows])
    bom = {"utf-16-le": "\ufeff", "utf-16-be": "\ufeff"}.get(encoding, "")
    body = (bom + buffer.getvalue()).encode(encoding)
    with start() as client:
        output = output_of(client, body)
    # UTF-8 out, with the BOM the input had (a UTF-16 file always has one).
    assert output.startswith(b"\xef\xbb\xbf") == (encoding != "utf-8")
    table = list(csv.reader(io.StringIO(output.decode("utf-8-sig")), delimiter=delimiter))
    assert table[0] == [*header, "Output Image Urls"]
    assert [row[:3] for row in table[1:]] == rows
    assert [len(row[3].split(",")) for row in table[1:]] == [2, 1]
    assert all(url.startswith("http://127.0.0.1:8000/files/") for url in table[1][3].split(","))


# --- workbooks -------------------------------------------------------------------------


def workbook(rows: list[list[Any]], *, extra_sheet: bool = True) -> bytes:
    """A real .xlsx written by openpyxl (shared strings, numbers stored as numbers)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Products"
    for row in rows:
        sheet.append(row)
    if extra_sheet:
        book.create_sheet("Notes").append(["not read", "at all"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_a_workbook_is_read_from_its_first_sheet_with_whole_serials(
    start: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    urls = [photo(photo_origin, photos, i) for i in range(3)]
    body = workbook(
        [
            ["S. No.", "Product Name", "Input Image Urls"],
            [1, "SKU1", f"{urls[0]},\n{urls[1]}"],  # a line break inside a cell, as Alt+Enter
            [],  # a blank row is skipped
            [2.0, "SKU2", urls[2]],  # Excel keeps every number as a float
        ]
    )
    with start() as client:
        output = output_of(client, body, "catalogue.xlsx")
    assert output.startswith(b"\xef\xbb\xbf")  # comma-separated UTF-8 with a BOM
    table = list(csv.reader(io.StringIO(output.decode("utf-8-sig"))))
    assert table[0] == ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls"]
    assert [row[:2] for row in table[1:]] == [["1", "SKU1"], ["2", "SKU2"]]
    assert [len(row[3].split(",")) for row in table[1:]] == [2, 1]


def test_a_workbook_with_bad_rows_is_refused_with_sheet_row_numbers(start: Service) -> None:
    body = workbook(
        [
            ["S. No.", "Product Name", "Input Image Urls"],
            [1, "SKU1", "https://img.example/a.jpg"],
            [],
            [2, "", "https://img.example/b.jpg"],  # row 4: no name
            [3, "Multi\nline\nname", "ftp://img.example/c.jpg"],  # row 5: not http
            [1.5, "SKU4", "https://img.example/d.jpg"],  # row 6: not a whole number
        ]
    )
    with start() as client:
        response = upload(client, body, "catalogue.xlsx")
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [
        (4, "Product Name"),
        (5, "Input Image Urls"),
        (6, "S. No."),
    ]
    assert "ftp:" in errors[1]["message"]
    assert '"1.5"' in errors[2]["message"]


def test_a_workbook_bomb_is_refused_before_it_is_unpacked(start: Service) -> None:
    # A real workbook plus one part of 64 MiB of zeros: about 64 KiB packed.
    buffer = io.BytesIO(workbook([["S. No.", "Product Name", "Input Image Urls"]]))
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", b"\0" * (64 * MiB))
    body = buffer.getvalue()
    assert len(body) < MiB
    with start(max_workbook_bytes=16 * MiB) as client:
        response = upload(client, body, "catalogue.xlsx")
    assert response.status_code == 413, response.text
    assert "the workbook unpacks to" in response.json()["detail"]
    assert client.get("/api/v1/requests").json()["total"] == 0


def test_a_zip_that_is_no_workbook_is_a_400(start: Service) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with start() as client:
        response = upload(client, buffer.getvalue(), "products.csv")
    assert response.status_code == 400
    assert "not an Excel workbook" in response.json()["detail"]


# --- the Errors column -----------------------------------------------------------------


def test_an_errors_column_is_ignored_and_any_other_extra_column_refused(
    start: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    url = photo(photo_origin, photos, 0)
    accepted = (
        "S. No.,Product Name,Input Image Urls,Errors\r\n"
        f'1,SKU1,{url},"{url}: http_error: the server answered 404 Not Found"\r\n'
        f"2,SKU2,{url}\r\n"  # the Errors cell may be missing altogether
    )
    refused = f"S. No.,Product Name,Input Image Urls,Notes\r\n1,SKU1,{url},fragile\r\n"
    with start() as client:
        output = output_of(client, accepted.encode())
        table = list(csv.reader(io.StringIO(output.decode())))
        assert table[0] == ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls"]
        assert [row[:3] for row in table[1:]] == [["1", "SKU1", url], ["2", "SKU2", url]]

        response = upload(client, refused.encode())
    assert response.status_code == 422
    (error,) = response.json()["detail"]["errors"]
    assert error["line"] == 1 and error["column"] == "Notes"
    assert error["message"].startswith('unknown column "Notes"')
