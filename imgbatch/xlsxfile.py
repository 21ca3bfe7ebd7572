"""Rows of an Excel workbook (.xlsx) upload, read from its first sheet (SPEC §1).

openpyxl in read-only mode parses the sheet's XML as it streams, one row at a time, so
memory grows with the shared-strings table (at most the upload's size in text), never
with the sheet. Before anything is parsed, the archive's declared uncompressed size is
capped (``IMGBATCH_MAX_WORKBOOK_BYTES``): a zip bomb is refused with a 413. Python's zip
reader never inflates a member past the size it declares, so the cap holds even when
the declarations lie.

Cells become the text a person sees: a number stored as 12.0 (Excel keeps every number
as a float) is "12", not "12.0"; an empty cell is "". Line numbers are sheet rows.
"""

from __future__ import annotations

import datetime
import warnings
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from openpyxl import load_workbook

from imgbatch.errors import CsvTooLarge, CsvUnreadable

MAX_MEMBERS = 10_000  # a real workbook has dozens; more is a crafted archive

_NOT_A_WORKBOOK = "this file is a zip archive but not an Excel workbook (.xlsx) that can be read"


def workbook_rows(stream: IO[bytes], max_uncompressed: int) -> Iterator[tuple[int, list[str]]]:
    """(sheet row number, cell texts) of the first sheet's non-blank rows.

    Raises CsvTooLarge for an archive over ``max_uncompressed`` bytes unpacked, and
    CsvUnreadable for one that is not a readable workbook (also while rows stream).
    """
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CsvUnreadable(_NOT_A_WORKBOOK) from exc
    members = archive.infolist()
    archive.close()  # leaves ``stream`` open: the archive did not open it
    unpacked = sum(member.file_size for member in members)
    if len(members) > MAX_MEMBERS or unpacked > max_uncompressed:
        raise CsvTooLarge(
            f"the workbook unpacks to {unpacked:,} bytes in {len(members):,} parts; the "
            f"limit is {max_uncompressed:,} bytes (save the sheet as CSV, or split it)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles it does not read
            book = load_workbook(stream, read_only=True, data_only=True)
        sheet = book.worksheets[0]
    except Exception as exc:  # openpyxl raises anything from KeyError to XML errors
        raise CsvUnreadable(_NOT_A_WORKBOOK) from exc
    # The sheet's stated dimensions are often wrong; read the cells that are there.
    sheet.reset_dimensions()
    return _rows(sheet.iter_rows(values_only=True), book)


def _rows(values: Iterator[tuple[Any, ...]], book: Any) -> Iterator[tuple[int, list[str]]]:
    try:
        for number, row in enumerate(values, 1):
            cells = [_text(value) for value in row]
            if any(cell.strip() for cell in cells):
                yield number, cells
    except (CsvUnreadable, GeneratorExit):
        raise
    except Exception as exc:  # a damaged sheet found while streaming
        raise CsvUnreadable(f"{_NOT_A_WORKBOOK}: {exc}") from exc
    finally:
        book.close()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)
