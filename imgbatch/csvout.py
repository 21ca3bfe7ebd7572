"""Write the output CSV (SPEC §4): the input's columns, in the input's order and with its
header names and BOM, and the output URLs. CRLF line ends (RFC 4180; what Excel writes
and expects)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

from imgbatch.csvcheck import Column
from imgbatch.csvfile import CsvHeader

OUTPUT_COLUMN = "Output Image Urls"

# A cell starting with one of these is run as a formula by spreadsheets (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def output_csv(
    header: CsvHeader, rows: Iterable[tuple[str, str, str, Sequence[str | None]]]
) -> Iterator[str]:
    """The output CSV as text, one line at a time (CRLF line ends, BOM as the input had).

    Each row is (serial, product_name, urls_cell, output_urls); a None output URL (a
    failed image) leaves its place empty so positions stay aligned with the input.
    """
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    order = [column for column, _ in header.columns]
    first = [_neutralise(text) for _, text in header.columns] + [OUTPUT_COLUMN]
    yield ("\ufeff" if header.bom else "") + writer.writerow(first)
    for serial, product_name, urls_cell, output_urls in rows:
        values = {Column.SERIAL: serial, Column.NAME: product_name, Column.URLS: urls_cell}
        outputs = ",".join(url or "" for url in output_urls)
        cells = [_neutralise(values[column]) for column in order] + [_neutralise(outputs)]
        yield writer.writerow(cells)


def _neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


class _Echo:
    """A file-like whose write returns the line, so csv.writer.writerow returns it."""

    def write(self, line: str) -> str:
        return line
