"""The output CSV and the errors file (SPEC §4), written as text one line at a time.

Both repeat the input's header names, column order, delimiter and BOM (a workbook's
output is comma-separated UTF-8 with a BOM), use CRLF line ends (RFC 4180; what Excel
writes and expects), and neutralise cells a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

from imgbatch.csvcheck import Column
from imgbatch.csvheader import ERRORS_COLUMN, CsvHeader

OUTPUT_COLUMN = "Output Image Urls"

# A cell starting with one of these is run as a formula by spreadsheets (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def output_csv(
    header: CsvHeader, rows: Iterable[tuple[str, str, str, Sequence[str | None]]]
) -> Iterator[str]:
    """The output CSV: the input's columns, then one output URL per input URL.

    Each row is (serial, product_name, urls_cell, output_urls); a None output URL (a
    failed image) leaves its place empty so positions stay aligned with the input.
    """
    return _table(
        header,
        OUTPUT_COLUMN,
        (
            (serial, name, urls_cell, ",".join(url or "" for url in outputs))
            for serial, name, urls_cell, outputs in rows
        ),
    )


def errors_csv(
    header: CsvHeader, rows: Iterable[tuple[str, str, Sequence[tuple[str, str, str]]]]
) -> Iterator[str]:
    """The errors file: per row with failed images, the URL cell holds only those URLs.

    Each row is (serial, product_name, failures), a failure being (url, error_code,
    message). The last column, ``Errors``, has one line per failure; uploading the file
    again (it is ignored then) retries just the failed images.
    """
    return _table(
        header,
        ERRORS_COLUMN,
        (
            (
                serial,
                name,
                ",".join(url for url, _, _ in failures),
                "\n".join(f"{url}: {code}: {message}" for url, code, message in failures),
            )
            for serial, name, failures in rows
            if failures
        ),
    )


def _table(
    header: CsvHeader, last: str, rows: Iterable[tuple[str, str, str, str]]
) -> Iterator[str]:
    writer = csv.writer(_Echo(), delimiter=header.delimiter, lineterminator="\r\n")
    order = [column for column, _ in header.columns]
    first = [_neutralise(text) for _, text in header.columns] + [last]
    yield ("\ufeff" if header.bom else "") + writer.writerow(first)
    for serial, product_name, urls_cell, extra in rows:
        values = {Column.SERIAL: serial, Column.NAME: product_name, Column.URLS: urls_cell}
        yield writer.writerow(
            [_neutralise(values[column]) for column in order] + [_neutralise(extra)]
        )


def _neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


class _Echo:
    """A file-like whose write returns the line, so csv.writer.writerow returns it."""

    def write(self, line: str) -> str:
        return line
