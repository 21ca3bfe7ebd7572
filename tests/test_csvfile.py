"""The input CSV (SPEC §1) read through ``open_csv``, and the output CSV (SPEC §4)."""

from __future__ import annotations

import csv
import dataclasses
import gc
import io
import itertools
from pathlib import Path

import pytest

from imgbatch.config import Settings
from imgbatch.csvfile import (
    Column,
    CsvHeader,
    CsvLimits,
    CsvReader,
    CsvRow,
    open_csv,
)
from imgbatch.csvoutput import output_csv
from imgbatch.errors import CsvInvalid, CsvProblem, CsvUnreadable

LIMITS = CsvLimits(max_rows=1000, max_urls_per_row=10, max_url_length=200, max_errors=50)
HEADER = "S. No.,Product Name,Input Image Urls\n"
SPEC_EXAMPLE = (
    "S. No.,Product Name,Input Image Urls\n"
    '1,SKU1,"https://img.example/a1.jpg,https://img.example/a2.jpg,https://img.example/a3.jpg"\n'
)
SPEC_URLS = (
    "https://img.example/a1.jpg",
    "https://img.example/a2.jpg",
    "https://img.example/a3.jpg",
)


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def read(data: str | bytes, limits: CsvLimits = LIMITS) -> tuple[CsvReader, list[CsvRow]]:
    """Read a valid file whole; fails the test if it is not valid."""
    reader = open_csv(io.BytesIO(_bytes(data)), limits)
    rows = list(reader.rows())
    reader.raise_if_invalid()
    return reader, rows


def problems_of(data: str | bytes, limits: CsvLimits = LIMITS) -> CsvInvalid:
    """Read a file that must be rejected as invalid (422), at open or after the rows."""
    with pytest.raises(CsvInvalid) as caught:
        reader = open_csv(io.BytesIO(_bytes(data)), limits)
        for _ in reader.rows():
            pass
        reader.raise_if_invalid()
    return caught.value


def only_problem(data: str | bytes, limits: CsvLimits = LIMITS) -> CsvProblem:
    found = problems_of(data, limits).problems
    assert len(found) == 1, found
    return found[0]


def unreadable(data: str | bytes) -> str:
    with pytest.raises(CsvUnreadable) as caught:
        reader = open_csv(io.BytesIO(_bytes(data)), LIMITS)
        for _ in reader.rows():
            pass
    return str(caught.value)


# --- the format -----------------------------------------------------------------------


def test_the_spec_example_reads_as_one_product_with_three_urls() -> None:
    reader, rows = read(SPEC_EXAMPLE)
    assert rows == [
        CsvRow(
            line=2,
            serial="1",
            product_name="SKU1",
            urls_cell=",".join(SPEC_URLS),
            urls=SPEC_URLS,
        )
    ]
    assert reader.header == CsvHeader(
        columns=(
            (Column.SERIAL, "S. No."),
            (Column.NAME, "Product Name"),
            (Column.URLS, "Input Image Urls"),
        ),
        bom=False,
    )
    assert reader.problems == []


@pytest.mark.parametrize(
    "name",
    [
        "S. No.",
        "S.No",
        "S No",
        "SNo",
        "Serial Number",
        "Serial No",
        "s. no.",
        "S.NO.",
        "  sno  ",
        "SERIAL NUMBER",
        "serial  no.",
    ],
)
def test_every_spelling_of_the_serial_column_is_accepted(name: str) -> None:
    reader, rows = read(f'"{name}",Product Name,Input Image Urls\n7,A,https://x/a.jpg\n')
    assert reader.header.columns[0] == (Column.SERIAL, name)
    assert rows[0].serial == "7"


@pytest.mark.parametrize("name", ["Product Name", "product name", "PRODUCT NAME", " Product Name "])
def test_the_product_name_column_matches_in_any_case(name: str) -> None:
    reader, rows = read(f'S. No.,"{name}",Input Image Urls\n1,A,https://x/a.jpg\n')
    assert reader.header.name(Column.NAME) == name
    assert rows[0].product_name == "A"


@pytest.mark.parametrize(
    "name", ["Input Image Urls", "Input Image URLs", "input image urls", "INPUT IMAGE URLS"]
)
def test_the_url_column_matches_in_any_case(name: str) -> None:
    reader, rows = read(f"S. No.,Product Name,{name}\n1,A,https://x/a.jpg\n")
    assert reader.header.name(Column.URLS) == name
    assert rows[0].urls == ("https://x/a.jpg",)


@pytest.mark.parametrize("name", ["Serial", "Sr. No.", "ProductName", "Image Urls", "Input Url"])
def test_a_name_that_is_not_an_alias_is_an_unknown_column(name: str) -> None:
    found = problems_of(f"{name},S. No.,Product Name,Input Image Urls\n1,A,https://x/a.jpg\n")
    assert found.problems[0] == CsvProblem(
        1,
        name,
        f'unknown column "{name}": the columns are S. No., Product Name and Input Image Urls',
    )


@pytest.mark.parametrize("order", list(itertools.permutations(Column)))
def test_columns_may_come_in_any_order(order: tuple[Column, ...]) -> None:
    names = {Column.SERIAL: "SNo", Column.NAME: "Product Name", Column.URLS: "Input Image URLs"}
    values = {
        Column.SERIAL: "3",
        Column.NAME: "Mug",
        Column.URLS: '"https://x/1.jpg,https://x/2.jpg"',
    }
    text = ",".join(names[c] for c in order) + "\n" + ",".join(values[c] for c in order) + "\n"
    reader, rows = read(text)
    assert [column for column, _ in reader.header.columns] == list(order)
    assert (rows[0].serial, rows[0].product_name) == ("3", "Mug")
    assert rows[0].urls == ("https://x/1.jpg", "https://x/2.jpg")


@pytest.mark.parametrize("bom", [True, False])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_bom_and_line_ends_are_accepted_and_the_bom_is_noted(bom: bool, newline: str) -> None:
    text = SPEC_EXAMPLE.replace("\n", newline) + f"2,SKU2,https://x/b.jpg{newline}"
    reader, rows = read(("\ufeff" if bom else "") + text)
    assert reader.header.bom is bom
    assert reader.header.columns[0] == (Column.SERIAL, "S. No.")  # no BOM left in the name
    assert [(row.line, row.serial) for row in rows] == [(2, "1"), (3, "2")]
    assert rows[0].urls == SPEC_URLS


def test_a_file_without_a_final_line_end_reads_its_last_row() -> None:
    _, rows = read(HEADER + "1,A,https://x/a.jpg")
    assert rows[0].urls == ("https://x/a.jpg",)


def test_the_unquoted_url_list_of_the_spec_is_one_list() -> None:
    _, rows = read(HEADER + "1, SKU1, https://x/1.jpg,https://x/2.jpg\n")
    assert rows == [
        CsvRow(
            line=2,
            serial="1",
            product_name="SKU1",
            urls_cell="https://x/1.jpg,https://x/2.jpg",
            urls=("https://x/1.jpg", "https://x/2.jpg"),
        )
    ]


@pytest.mark.parametrize(
    ("header", "row", "serial", "name"),
    [
        (
            "Input Image Urls,S. No.,Product Name",
            "https://x/1.jpg,https://x/2.jpg,5,Cup",
            "5",
            "Cup",
        ),
        (
            "S. No.,Input Image Urls,Product Name",
            "5,https://x/1.jpg,https://x/2.jpg,Cup",
            "5",
            "Cup",
        ),
        (
            "Product Name,S. No.,Input Image Urls",
            "Cup,5,https://x/1.jpg,https://x/2.jpg",
            "5",
            "Cup",
        ),
    ],
)
def test_an_unquoted_list_is_taken_by_the_url_column_wherever_it_is(
    header: str, row: str, serial: str, name: str
) -> None:
    _, rows = read(f"{header}\n{row}\n")
    assert (rows[0].serial, rows[0].product_name) == (serial, name)
    assert rows[0].urls == ("https://x/1.jpg", "https://x/2.jpg")
    assert rows[0].urls_cell == "https://x/1.jpg,https://x/2.jpg"


def test_a_comma_in_an_unquoted_name_is_reported_not_shifted_into_the_list() -> None:
    problem = only_problem(HEADER + "1,Shirt, blue,https://x/1.jpg\n")
    assert (problem.line, problem.column) == (2, "Input Image Urls")
    assert problem.message.startswith('URL 1 "blue" is not an absolute URL')
    assert "a product name with a comma must be in double quotes" in problem.message


def test_a_quoted_list_after_spaces_is_still_quoted() -> None:
    _, rows = read(HEADER + '1, SKU1, "https://x/1.jpg, https://x/2.jpg"\n')
    assert rows[0].urls == ("https://x/1.jpg", "https://x/2.jpg")
    assert rows[0].urls_cell == "https://x/1.jpg, https://x/2.jpg"


def test_trailing_commas_are_ignored_in_the_header_and_the_rows() -> None:
    reader, rows = read(
        "S. No.,Product Name,Input Image Urls,,\n"
        "1,A,https://x/1.jpg,,\n"
        '2,B,"https://x/2.jpg,https://x/3.jpg,"\n'
    )
    assert len(reader.header.columns) == 3
    assert [row.urls for row in rows] == [
        ("https://x/1.jpg",),
        ("https://x/2.jpg", "https://x/3.jpg"),
    ]
    assert [row.urls_cell for row in rows] == [
        "https://x/1.jpg",
        "https://x/2.jpg,https://x/3.jpg,",
    ]


def test_trailing_commas_are_ignored_when_the_url_column_comes_first() -> None:
    _, rows = read(
        "Input Image Urls,S. No.,Product Name\nhttps://x/1.jpg,https://x/2.jpg,5,Cup,,\n"
    )
    assert (rows[0].serial, rows[0].product_name) == ("5", "Cup")
    assert rows[0].urls == ("https://x/1.jpg", "https://x/2.jpg")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_multi_line_url_cell_keeps_physical_line_numbers(newline: str) -> None:
    text = (
        HEADER
        + '1,A,"\n  https://x/1.jpg,\n  https://x/2.jpg\n"\n'
        + "2,B,https://x/3.jpg\n"
        + '3,C,"https://x/4.jpg,\n https://x/5.jpg"\n'
    ).replace("\n", newline)
    _, rows = read(text)
    assert [row.line for row in rows] == [2, 6, 7]
    assert rows[0].urls == ("https://x/1.jpg", "https://x/2.jpg")
    assert rows[0].urls_cell == f"{newline}  https://x/1.jpg,{newline}  https://x/2.jpg{newline}"
    assert rows[2].urls == ("https://x/4.jpg", "https://x/5.jpg")


def test_an_error_in_a_multi_line_cell_is_reported_on_its_own_line() -> None:
    text = (
        HEADER
        + '1,"Long\nname","https://x/1.jpg,\nhttps://x/2.jpg,\n  ftp://x/3.jpg"\n'
        + "1,B,https://x/4.jpg\n"
    )
    found = problems_of(text).problems
    assert [(p.line, p.column) for p in found] == [(5, "Input Image Urls"), (6, "S. No.")]
    assert found[0].message.startswith('URL 3 "ftp://x/3.jpg" uses ftp:')
    assert found[1].message == "serial number 1 is already used on line 2"


def test_blank_lines_and_blank_rows_are_skipped_and_lines_stay_physical() -> None:
    text = "\n" + HEADER + "\n,,\n   \n1,A,https://x/a.jpg\n\n2,B,https://x/b.jpg\n\n"
    reader, rows = read(text)
    assert [(row.line, row.serial) for row in rows] == [(6, "1"), (8, "2")]
    assert reader.problems == []


def test_a_serial_with_a_trailing_dot_is_kept_as_received() -> None:
    _, rows = read(HEADER + "1.,A,https://x/a.jpg\n 2. ,B,https://x/b.jpg\n")
    assert [row.serial for row in rows] == ["1.", "2. "]


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://X.EXAMPLE/A.JPG",
        "http://img.example:8080/a.jpg?w=1&h=2#top",
        "http://[::1]:8080/a.jpg",  # a forbidden address fails at fetch time, not here
        "http://127.0.0.1/a.jpg",
        "https://例え.jp/画像.jpg",
        "https://user:pw@img.example/a.jpg",
        "https://img.example",
    ],
)
def test_absolute_http_urls_of_every_shape_are_accepted(url: str) -> None:
    _, rows = read(HEADER + f"1,A,{url}\n")
    assert rows[0].urls == (url,)


# --- errors, each with its line and column ----------------------------------------------


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("", "the serial number is empty"),
        ("abc", 'serial number "abc" is not a positive whole number'),
        ("-1", 'serial number "-1" is not a positive whole number'),
        ("1.5", 'serial number "1.5" is not a positive whole number'),
        ("1 2", 'serial number "1 2" is not a positive whole number'),
        ("0", "the serial number must be 1 or more, not 0"),
        ("1" * 19, f'serial number "{"1" * 19}" is longer than 18 digits'),
    ],
)
def test_a_bad_serial_is_reported(cell: str, message: str) -> None:
    text = HEADER + "1,A,https://x/a.jpg\n" + f'"{cell}",B,https://x/b.jpg\n'
    assert only_problem(text) == CsvProblem(3, "S. No.", message)


@pytest.mark.parametrize(("first", "second"), [("4", "4"), ("4", "4."), ("4", "04")])
def test_a_repeated_serial_names_the_line_of_its_first_use(first: str, second: str) -> None:
    text = HEADER + f"{first},A,https://x/a.jpg\n2,B,https://x/b.jpg\n{second},C,https://x/c.jpg\n"
    assert only_problem(text) == CsvProblem(
        4, "S. No.", "serial number 4 is already used on line 2"
    )


@pytest.mark.parametrize("name", ["", "   ", '"  "'])
def test_an_empty_product_name_is_reported(name: str) -> None:
    text = HEADER + f"1,{name},https://x/a.jpg\n"
    assert only_problem(text) == CsvProblem(2, "Product Name", "the product name is empty")


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("", "there is no image URL"),
        ('" , "', "there is no image URL"),
        ("img.example/a.jpg", 'URL 1 "img.example/a.jpg" is not an absolute URL'),
        ("//img.example/a.jpg", 'URL 1 "//img.example/a.jpg" is not an absolute URL'),
        ("ftp://img.example/a.jpg", 'URL 1 "ftp://img.example/a.jpg" uses ftp:'),
        ("javascript:alert(1)", 'URL 1 "javascript:alert(1)" is not an absolute URL'),
        ("https://", 'URL 1 "https://" has no host name'),
        ("https:///a.jpg", 'URL 1 "https:///a.jpg" has no host name'),
        ("http://img.example:99999/a", 'URL 1 "http://img.example:99999/a" has an invalid port'),
        ("http://img.example:x/a", 'URL 1 "http://img.example:x/a" has an invalid port'),
        ("http://[::1/a.jpg", 'URL 1 "http://[::1/a.jpg" is not a valid URL'),
        ("http://img<x>.example/a.jpg", 'URL 1 "http://img<x>.example/a.jpg" has an invalid host'),
        ("https://x/a b.jpg", 'URL 1 "https://x/a b.jpg" contains a space'),
        ("https://x/a\x07.jpg", 'URL 1 "https://x/a\x07.jpg" contains a space or a control'),
        ('"https://x/1.jpg,,https://x/2.jpg"', "URL 2 is empty (two commas in a row?)"),
        ('",https://x/1.jpg"', "URL 1 is empty (two commas in a row?)"),
        ('"https://x/1.jpg,http//x/2.jpg"', 'URL 2 "http//x/2.jpg" is not an absolute URL'),
    ],
)
def test_a_bad_url_is_reported_with_its_position(cell: str, message: str) -> None:
    problem = only_problem(HEADER + f"1,A,{cell}\n")
    assert (problem.line, problem.column) == (2, "Input Image Urls")
    assert problem.message.startswith(message), problem.message


def test_a_url_over_the_length_limit_is_reported() -> None:
    limits = CsvLimits(max_rows=10, max_urls_per_row=10, max_url_length=30, max_errors=10)
    ok, too_long = "https://x/" + "a" * 20, "https://x/" + "a" * 21
    read(HEADER + f"1,A,{ok}\n", limits)
    problem = only_problem(HEADER + f"1,A,{too_long}\n", limits)
    assert problem == CsvProblem(
        2, "Input Image Urls", f'URL 1 "{too_long}" is longer than 30 characters'
    )


def test_too_many_urls_in_a_row_is_reported() -> None:
    limits = CsvLimits(max_rows=10, max_urls_per_row=3, max_url_length=100, max_errors=10)
    three = ",".join(f"https://x/{i}.jpg" for i in range(3))
    four = ",".join(f"https://x/{i}.jpg" for i in range(4))
    read(HEADER + f'1,A,"{three}"\n', limits)
    problem = only_problem(HEADER + f'1,A,"{four}"\n', limits)
    assert problem == CsvProblem(2, "Input Image Urls", "4 image URLs; a row may have at most 3")


def test_a_row_with_too_few_cells_is_reported() -> None:
    problem = only_problem(HEADER + "1,A\n")
    assert (problem.line, problem.column) == (2, None)
    assert problem.message.startswith("this row has 2 cell(s), but the header has 3 columns")


def test_every_error_of_a_file_is_listed_in_order() -> None:
    text = (
        HEADER
        + "1,A,https://x/a.jpg\n"
        + "x,,https://x/b.jpg\n"
        + "2,C,ftp://x/c.jpg\n"
        + "1,D,https://x/d.jpg\n"
    )
    assert [(p.line, p.column) for p in problems_of(text).problems] == [
        (3, "S. No."),
        (3, "Product Name"),
        (4, "Input Image Urls"),
        (5, "S. No."),
    ]


def test_problems_name_the_column_as_the_user_wrote_it() -> None:
    problem = only_problem("serial no,PRODUCT NAME,input image URLs\n1,,https://x/a.jpg\n")
    assert problem.column == "PRODUCT NAME"


def test_only_valid_rows_are_streamed_and_problems_collected_meanwhile() -> None:
    text = HEADER + "1,A,https://x/a.jpg\n2,,https://x/b.jpg\n3,C,https://x/c.jpg\n"
    reader = open_csv(io.BytesIO(text.encode()), LIMITS)
    rows = reader.rows()
    assert next(rows).serial == "1"
    assert reader.problems == []
    assert next(rows).serial == "3"
    assert [p.line for p in reader.problems] == [3]
    with pytest.raises(CsvInvalid):
        reader.raise_if_invalid()


@pytest.mark.parametrize(("bad_rows", "cap", "truncated"), [(3, 3, False), (10, 3, True)])
def test_errors_are_capped(bad_rows: int, cap: int, truncated: bool) -> None:
    limits = CsvLimits(max_rows=100, max_urls_per_row=10, max_url_length=100, max_errors=cap)
    text = HEADER + "".join(f"{i},,https://x/{i}.jpg\n" for i in range(1, bad_rows + 1))
    found = problems_of(text, limits)
    assert [p.line for p in found.problems] == [2, 3, 4]
    assert found.truncated is truncated


def test_reading_stops_at_the_error_cap() -> None:
    # Past the cap the file is rejected anyway: a bad byte further on is not read.
    limits = CsvLimits(max_rows=10_000, max_urls_per_row=10, max_url_length=100, max_errors=2)
    good = "".join(f"{i},P,https://x/{i}.jpg\n" for i in range(4, 2000))  # past the first chunk
    text = (HEADER + "1,,x\n2,,x\n3,,x\n" + good).encode() + b"2000,\xff,https://x/a.jpg\n"
    assert problems_of(text, limits).truncated


def test_more_rows_than_the_limit_is_reported_on_the_first_row_over() -> None:
    limits = CsvLimits(max_rows=3, max_urls_per_row=10, max_url_length=100, max_errors=10)
    rows = "".join(f"{i},P,https://x/{i}.jpg\n" for i in range(1, 4))
    read(HEADER + rows, limits)
    problem = only_problem(HEADER + rows + "\n4,P,https://x/4.jpg\n5,P,https://x/5.jpg\n", limits)
    assert (problem.line, problem.column) == (6, None)
    assert problem.message.startswith("the file has more than 3 product rows")


@pytest.mark.parametrize("text", [HEADER, HEADER + "\n\n,,\n", "\ufeff" + HEADER])
def test_a_header_without_rows_is_an_error(text: str) -> None:
    assert only_problem(text) == CsvProblem(1, None, "the file has a header but no product rows")


# --- header errors, raised by open_csv at once --------------------------------------------


def _header_problems(header: str) -> list[CsvProblem]:
    with pytest.raises(CsvInvalid) as caught:
        open_csv(io.BytesIO(f"{header}\n1,A,https://x/a.jpg,x\n".encode()), LIMITS)
    return caught.value.problems


def test_an_extra_column_is_an_error() -> None:
    assert _header_problems("S. No.,Product Name,Input Image Urls,Notes") == [
        CsvProblem(
            1,
            "Notes",
            'unknown column "Notes": the columns are S. No., Product Name and Input Image Urls',
        )
    ]


def test_a_repeated_column_is_an_error() -> None:
    assert _header_problems("S. No.,Product Name,SNo,Input Image Urls") == [
        CsvProblem(1, "SNo", 'column "SNo" repeats the column "S. No."')
    ]


def test_a_missing_column_is_an_error() -> None:
    assert _header_problems("S. No.,Input Image Urls") == [
        CsvProblem(1, None, "the header has no Product Name column")
    ]


def test_an_unnamed_column_in_the_middle_is_an_error() -> None:
    assert _header_problems("S. No.,,Product Name,Input Image Urls") == [
        CsvProblem(1, None, "header cell 2 is empty")
    ]


def test_a_file_without_a_header_row_is_told_so() -> None:
    (problem,) = _header_problems("1,SKU1,https://x/a.jpg")
    assert problem.line == 1
    assert problem.message.startswith("the first row must be a header naming the columns")
    assert '"SKU1"' in problem.message


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_the_delimiter_is_decided_from_the_header_line(delimiter: str) -> None:
    text = (
        delimiter.join(["S. No.", "Product Name", "Input Image Urls"])
        + "\n"
        + delimiter.join(["1", "Cup, blue", "https://x/a.jpg,https://x/b.jpg"])
        + "\n"
    )
    reader, rows = read(text)
    assert reader.header.delimiter == delimiter
    assert rows == [
        CsvRow(
            2,
            "1",
            "Cup, blue",
            "https://x/a.jpg,https://x/b.jpg",
            ("https://x/a.jpg", "https://x/b.jpg"),
        )
    ]


def test_a_semicolon_inside_a_comma_separated_file_stays_text() -> None:
    reader, rows = read(HEADER + '1,"Cup; blue",https://x/a.jpg\n')
    assert reader.header.delimiter == ","
    assert rows[0].product_name == "Cup; blue"


# --- malformed quoting --------------------------------------------------------------------


def test_an_unclosed_quote_is_reported_where_it_opens() -> None:
    text = HEADER + "1,A,https://x/a.jpg\n" + '2,B,"https://x/b.jpg\n3,C,https://x/c.jpg\n'
    assert only_problem(text) == CsvProblem(
        3, None, 'a quoted cell that starts here is never closed (a " is missing)'
    )


def test_text_after_a_closing_quote_is_reported_and_reading_goes_on() -> None:
    text = HEADER + '1,"Cup" XL,https://x/a.jpg\n2,B,ftp://x/b.jpg\n'
    found = problems_of(text).problems
    assert [(p.line, p.column) for p in found] == [(2, None), (3, "Input Image Urls")]
    assert found[0].message.startswith('a closing " must be followed by a comma')


def test_a_quote_problem_in_the_header_rejects_the_file_at_once() -> None:
    with pytest.raises(CsvInvalid) as caught:
        open_csv(io.BytesIO(b'"S. No." x,Product Name,Input Image Urls\n'), LIMITS)
    assert caught.value.problems[0].line == 1


def test_a_long_url_cell_within_the_limits_is_read() -> None:
    # Longer than the csv module's default cell limit (131,072 characters).
    limits = CsvLimits(max_rows=10, max_urls_per_row=200, max_url_length=2048, max_errors=10)
    urls = tuple(f"https://x/{i:04d}/" + "a" * 1000 for i in range(150))
    _, rows = read(HEADER + '1,A,"' + ",".join(urls) + '"\n', limits)
    assert rows[0].urls == urls


def test_a_cell_over_the_csv_cell_limit_is_reported_and_reading_goes_on() -> None:
    huge = "a" * (csv.field_size_limit() + 1)
    text = HEADER + f"1,{huge},https://x/a.jpg\n2,B,ftp://x/b.jpg\n"
    found = problems_of(text).problems
    assert [(p.line, p.column) for p in found] == [(2, None), (3, "Input Image Urls")]
    assert found[0].message.startswith("a cell is longer than")


# --- unreadable files (400) ---------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\n", b"\r\n  \r\n"])
def test_an_empty_file_is_unreadable(data: bytes) -> None:
    assert unreadable(data).startswith("the file is empty")


def test_an_image_is_unreadable(photos: list[Path]) -> None:
    for photo in photos:
        assert "not UTF-8" in unreadable(photo.read_bytes())


def test_a_png_is_unreadable() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02"
    assert "not UTF-8" in unreadable(png)


def test_a_nul_byte_is_unreadable() -> None:
    assert "NUL byte" in unreadable(HEADER.encode() + b"1,A\x00,https://x/a.jpg\n")


def test_a_latin_1_file_is_unreadable() -> None:
    text = HEADER + "1,Café crème,https://x/a.jpg\n"
    message = unreadable(text.encode("latin-1"))
    assert message.startswith("the file is not UTF-8 text (line 2 ")
    assert 'save it as "CSV UTF-8"' in message


def test_a_bad_byte_deep_in_the_file_stops_the_rows_with_its_line() -> None:
    good = "".join(f"{i},Product {i},https://x/{i}.jpg\n" for i in range(1, 5000))
    data = (HEADER + good).encode() + b"5000,Caf\xe9,https://x/5000.jpg\n"
    reader = open_csv(io.BytesIO(data), dataclasses.replace(LIMITS, max_rows=10_000))
    rows = reader.rows()
    assert next(rows).serial == "1"  # rows stream before the bad byte is even read
    with pytest.raises(CsvUnreadable, match=r"line 5001 has a byte that is not UTF-8"):
        for _ in rows:
            pass


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf_16_text_with_a_bom_is_read(encoding: str) -> None:
    text = "S. No.\tProduct Name\tInput Image Urls\r\n1\tSKU1\thttps://x/1.jpg,https://x/2.jpg\r\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    reader, rows = read(data)
    assert reader.header.bom and reader.header.source == "csv-utf-16"
    assert reader.header.delimiter == "\t"
    assert [(row.serial, row.urls) for row in rows] == [
        ("1", ("https://x/1.jpg", "https://x/2.jpg"))
    ]


def test_utf_16_that_does_not_decode_names_its_line() -> None:
    data = (HEADER + "1,A,https://x/a.jpg\n").encode("utf-16-le") + b"\x00\xd8\x41\x00"
    message = unreadable(b"\xff\xfe" + data)
    assert "not valid UTF-16 text (line 3" in message


def test_a_zip_that_is_no_workbook_is_unreadable() -> None:
    message = unreadable(b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 64)
    assert "not an Excel workbook (.xlsx)" in message


def test_an_old_binary_workbook_is_unreadable_with_a_hint() -> None:
    message = unreadable(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64)
    assert "old Excel workbook (.xls)" in message


# --- the reader as an object --------------------------------------------------------------


def test_the_callers_stream_is_read_from_its_position_and_never_closed() -> None:
    stream = io.BytesIO(b"ignored prefix" + SPEC_EXAMPLE.encode())
    stream.seek(len(b"ignored prefix"))
    reader = open_csv(stream, LIMITS)
    assert len(list(reader.rows())) == 1
    del reader
    gc.collect()
    assert not stream.closed


def test_rows_can_be_read_only_once() -> None:
    reader = open_csv(io.BytesIO(SPEC_EXAMPLE.encode()), LIMITS)
    list(reader.rows())
    with pytest.raises(RuntimeError):
        reader.rows()


def test_raise_if_invalid_reads_the_rest_of_the_file_first() -> None:
    text = HEADER + "1,A,https://x/a.jpg\n" + "2,,https://x/b.jpg\n"
    reader = open_csv(io.BytesIO(text.encode()), LIMITS)
    with pytest.raises(CsvInvalid) as caught:
        reader.raise_if_invalid()
    assert caught.value.problems == [CsvProblem(3, "Product Name", "the product name is empty")]


def test_limits_come_from_the_settings() -> None:
    settings = Settings(max_rows=5, max_urls_per_row=6, max_url_length=70, max_csv_errors=8)
    assert CsvLimits.from_settings(settings) == CsvLimits(
        max_rows=5, max_urls_per_row=6, max_url_length=70, max_errors=8
    )


def test_the_header_survives_json() -> None:
    reader, _ = read("\ufeffInput Image URLs,sno ,product name\nhttps://x/a.jpg,1,A\n")
    assert CsvHeader.from_json(reader.header.to_json()) == reader.header
    with pytest.raises(ValueError):
        CsvHeader.from_json({"columns": [["serial", "S. No."], ["serial", "SNo"]], "bom": False})


# --- the output CSV -----------------------------------------------------------------------


def _parse_output(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def test_the_output_follows_the_input_header_and_leaves_failed_places_empty() -> None:
    reader, rows = read(
        "Input Image URLs,sno,Product Name\n"
        + '"https://x/1.jpg,https://x/2.jpg,https://x/3.jpg",1.,Mug\n'
    )
    row = rows[0]
    outputs = ["http://o/1.jpg", None, "http://o/3.jpg"]
    text = "".join(
        output_csv(reader.header, [(row.serial, row.product_name, row.urls_cell, outputs)])
    )
    assert _parse_output(text) == [
        ["Input Image URLs", "sno", "Product Name", "Output Image Urls"],
        [row.urls_cell, "1.", "Mug", "http://o/1.jpg,,http://o/3.jpg"],
    ]
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")


@pytest.mark.parametrize("bom", [True, False])
def test_the_output_has_a_bom_exactly_when_the_input_had_one(bom: bool) -> None:
    reader, _ = read(("\ufeff" if bom else "") + SPEC_EXAMPLE)
    text = "".join(output_csv(reader.header, []))
    assert text.startswith("\ufeffS. No.,") is bom
    assert text.startswith("S. No.,") is not bom


def test_the_spec_example_round_trips_through_the_output() -> None:
    reader, rows = read(
        "\ufeff"
        + SPEC_EXAMPLE
        + "2, SKU2, https://x/1.jpg,https://x/2.jpg\n"
        + '3,"Name, with comma","\n https://x/3.jpg\n"\n'
    )
    outputs: dict[str, list[str | None]] = {
        "1": ["http://o/a1.jpg", "http://o/a2.jpg", None],
        "2": [None, None],
        "3": ["http://o/3.jpg"],
    }
    text = "".join(
        output_csv(
            reader.header,
            ((r.serial, r.product_name, r.urls_cell, outputs[r.serial]) for r in rows),
        )
    )
    assert text.startswith("\ufeff")
    assert _parse_output(text) == [
        ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls"],
        ["1", "SKU1", ",".join(SPEC_URLS), "http://o/a1.jpg,http://o/a2.jpg,"],
        ["2", "SKU2", "https://x/1.jpg,https://x/2.jpg", ","],
        ["3", "Name, with comma", "\n https://x/3.jpg\n", "http://o/3.jpg"],
    ]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_cells_a_spreadsheet_would_run_are_neutralised(start: str) -> None:
    cell = f'{start}HYPERLINK("http://evil")'
    text = "".join(output_csv(CsvHeader.default(), [(cell, cell, cell, [cell])]))
    assert _parse_output(text)[1] == ["'" + cell] * 4


@pytest.mark.parametrize("cell", ["1", "SKU-1", "a=b", " =x", "'quoted", "https://x/a.jpg"])
def test_harmless_cells_are_written_as_they_are(cell: str) -> None:
    text = "".join(output_csv(CsvHeader.default(), [(cell, cell, cell, [cell])]))
    assert _parse_output(text)[1] == [cell] * 4


def test_the_output_is_streamed_one_line_at_a_time() -> None:
    rows = ((str(i), "P", "https://x/a.jpg", ["http://o/a.jpg"]) for i in range(1, 4))
    lines = list(output_csv(CsvHeader.default(), rows))
    assert lines == [
        "S. No.,Product Name,Input Image Urls,Output Image Urls\r\n",
        "1,P,https://x/a.jpg,http://o/a.jpg\r\n",
        "2,P,https://x/a.jpg,http://o/a.jpg\r\n",
        "3,P,https://x/a.jpg,http://o/a.jpg\r\n",
    ]
