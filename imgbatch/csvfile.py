"""Read and validate an upload (SPEC §1): CSV text or an Excel workbook, typed rows out.

Pure: a binary stream in, typed rows out; no database, no HTTP. Around this module:
``csvdialect`` decides what the bytes are (encoding, delimiter), ``xlsxfile`` reads a
workbook's rows, ``csvheader`` the header row, ``csvcheck`` the rules of each cell, and
``csvoutput`` writes the output CSV and the errors file.

Reading is streamed: text is decoded incrementally and parsed by the csv module one
record at a time (a workbook one sheet row at a time), so memory stays flat however long
the file is. Only the serials seen so far are remembered, to find duplicates.

Choices beyond the letter of the SPEC:

- Line numbers are physical (header = 1) and point at the offending cell itself: a URL
  on the fourth line of a quoted multi-line cell is reported on that line. In a workbook
  a line number is the sheet row, whatever the cells hold.
- Spaces after a delimiter are skipped (``1, SKU1, "a,b"`` reads as intended), so cell
  values "as received" have no leading spaces.
- Blank lines, and rows whose cells are all blank (",,"), are skipped. Empty header cells
  and empty cells at the end of a row (trailing commas, as Excel writes them) are ignored.
- An ``Errors`` column (the errors file's) is ignored, and may be missing from a row.
- The unquoted URL list: a row with more cells than the header has columns gives the
  extra cells to the URL column, wherever that column is. The other two columns hold one
  cell each, so the split is unambiguous, and every cell the URL column takes must be a
  valid URL: a stray comma elsewhere (``Shirt, blue``) is reported, never silently
  shifted. The URL cell is kept as those cells joined back with ",".
- Stopping: at ``max_errors`` problems the reader stops reading (``truncated`` is set):
  the file is rejected either way, and reading on would cost the parse time of the rest
  of the file only to maybe turn a 422 into a 400. Likewise at the row after ``max_rows``.
- Quotes are parsed strictly: a quoted cell that is never closed, or text after a
  closing quote, is a problem with its line rather than a silently swallowed file.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

from imgbatch.config import Settings
from imgbatch.csvcheck import Column, line_breaks, parse_serial, parse_urls, syntax_problem
from imgbatch.csvdialect import CsvText, buffered, is_workbook, not_text, open_text
from imgbatch.csvheader import COLUMNS_SENTENCE, CsvHeader, parse_header
from imgbatch.csvoutput import OUTPUT_COLUMN, errors_csv, output_csv
from imgbatch.errors import CsvInvalid, CsvProblem, CsvUnreadable

__all__ = [
    "OUTPUT_COLUMN",
    "Column",
    "CsvHeader",
    "CsvLimits",
    "CsvReader",
    "CsvRow",
    "errors_csv",
    "open_csv",
    "output_csv",
]

Records = Iterator[tuple[int, list[str]]]


@dataclass(frozen=True)
class CsvLimits:
    max_rows: int
    max_urls_per_row: int
    max_url_length: int
    max_errors: int
    max_workbook_bytes: int = 200 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> CsvLimits:
        return cls(
            max_rows=settings.max_rows,
            max_urls_per_row=settings.max_urls_per_row,
            max_url_length=settings.max_url_length,
            max_errors=settings.max_csv_errors,
            max_workbook_bytes=settings.max_workbook_bytes,
        )

    @property
    def max_cell_chars(self) -> int:
        """Room for a full URL cell, with generous separators, plus some slack."""
        return self.max_urls_per_row * (self.max_url_length + 16) + 4096


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int  # physical line (a workbook: sheet row) where the row starts; header is 1
    serial: str  # as received ("1." stays "1.")
    product_name: str  # as received
    urls_cell: str  # as received; an unquoted list's cells joined back with ","
    urls: tuple[str, ...]  # parsed, stripped, in order


def open_csv(data: BinaryIO, limits: CsvLimits) -> CsvReader:
    """Start reading ``data`` (from its current position) and read the header.

    Raises CsvUnreadable for a file that is not CSV text or a workbook at all, CsvTooLarge
    for a workbook that unpacks too large, CsvInvalid for a header that is wrong. ``data``
    is read but never closed.
    """
    stream = buffered(data)
    if is_workbook(stream.peek(4)[:4]):
        return CsvReader.of_workbook(_seekable(stream), limits)
    # The limit is process-wide in the csv module: only ever raise it.
    if csv.field_size_limit() < limits.max_cell_chars:
        csv.field_size_limit(limits.max_cell_chars)
    return CsvReader.of_text(open_text(stream), limits)


def _seekable(stream: IO[bytes]) -> IO[bytes]:
    """A zip file is read from its end: copy a stream that cannot seek (a pipe)."""
    if stream.seekable():
        return stream
    copy = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    shutil.copyfileobj(stream, copy)
    copy.seek(0)
    return copy


class CsvReader:
    """Validates rows as they stream; made by ``open_csv``.

    Use: ``for row in reader.rows(): ...`` then ``reader.raise_if_invalid()``.
    """

    @classmethod
    def of_text(cls, text: CsvText, limits: CsvLimits) -> CsvReader:
        source = "csv-utf-16" if text.encoding == "utf-16" else "csv"
        reader = cls(limits, text.bom, text.delimiter, source, cell_lines=True)
        reader._start(reader._text_records(text))
        return reader

    @classmethod
    def of_workbook(cls, stream: IO[bytes], limits: CsvLimits) -> CsvReader:
        from imgbatch.xlsxfile import workbook_rows  # openpyxl (and numpy): for workbooks only

        # The output of a workbook is comma-separated UTF-8 with a BOM (Excel opens it).
        reader = cls(limits, True, ",", "xlsx", cell_lines=False)
        reader._start(reader._stoppable(workbook_rows(stream, limits.max_workbook_bytes)))
        return reader

    def __init__(
        self, limits: CsvLimits, bom: bool, delimiter: str, source: str, *, cell_lines: bool
    ) -> None:
        self.problems: list[CsvProblem] = []
        self.truncated = False  # problems stopped being collected at limits.max_errors
        self._limits = limits
        self._bom = bom
        self._delimiter = delimiter
        self._source = source
        self._cell_lines = cell_lines  # line breaks inside a cell count as lines (text)
        self._stopped = False
        self._rows: Iterator[CsvRow] | None = None
        self._finished = False

    def _start(self, records: Records) -> None:
        self._records = records
        self.header = self._read_header()

    def rows(self) -> Iterator[CsvRow]:
        """The valid rows, one by one; problems are collected in ``problems`` meanwhile."""
        if self._rows is not None:
            raise RuntimeError("the rows of a CSV can be read only once")
        self._rows = self._valid_rows()
        return self._rows

    def raise_if_invalid(self) -> None:
        """Raise CsvInvalid listing every problem; reads what ``rows()`` left unread first."""
        if not self._finished:
            for _ in self._rows if self._rows is not None else self.rows():
                pass
        if self.problems:
            raise CsvInvalid(list(self.problems), self.truncated)

    # --- reading ----------------------------------------------------------------------

    def _text_records(self, text: CsvText) -> Records:
        """Non-blank records with the physical line each starts on."""
        reader = csv.reader(
            self._lines(text), delimiter=text.delimiter, skipinitialspace=True, strict=True
        )
        while not self._stopped:
            before = reader.line_num
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self._add(syntax_problem(str(exc), before + 1, reader.line_num))
                continue
            if cells and (cells[0].strip() or "".join(cells).strip()):
                yield before + 1, cells

    def _lines(self, text: CsvText) -> Iterator[str]:
        """The decoded physical lines; bytes that are not text become CsvUnreadable."""
        count = 0
        try:
            for line in text.lines:
                count += 1
                if "\x00" in line:
                    raise CsvUnreadable(
                        f"line {count} holds a NUL byte: this is a binary file, not CSV text"
                    )
                yield line
        except UnicodeDecodeError as exc:
            # The undecodable chunk starts within the line after the last one read.
            raise not_text(exc, count, text.encoding) from exc

    def _stoppable(self, records: Records) -> Records:
        for record in records:
            if self._stopped:
                return
            yield record

    def _read_header(self) -> CsvHeader:
        first = next(self._records, None)
        if self.problems:
            raise CsvInvalid(list(self.problems))
        if first is None:
            raise CsvUnreadable("the file is empty: it needs a header row and product rows")
        line, cells = first
        self._header_line = line
        names = list(cells)
        while len(names) > 1 and not names[-1].strip():
            names.pop()  # trailing delimiters
        parsed = parse_header(
            line,
            names,
            bom=self._bom,
            delimiter=self._delimiter,
            source=self._source,
            max_errors=self._limits.max_errors,
        )
        header = parsed.header
        self._names = {column: text.strip() for column, text in header.columns}
        self._width = parsed.width
        self._serial_at = parsed.positions[Column.SERIAL]
        self._name_at = parsed.positions[Column.NAME]
        self._urls_at = parsed.positions[Column.URLS]
        self._last_needed = max(parsed.positions.values())
        return header

    def _valid_rows(self) -> Iterator[CsvRow]:
        limits = self._limits
        seen: dict[int, int] = {}  # serial -> line of its first use
        count = 0
        for line, cells in self._records:
            count += 1
            if count > limits.max_rows:
                self._add(
                    CsvProblem(
                        line,
                        None,
                        f"the file has more than {limits.max_rows:,} product rows, the most "
                        "one file may hold; split it into several files",
                    )
                )
                self._stopped = True
                break
            row = self._check_row(line, cells, seen)
            if row is not None:
                yield row
            if self._stopped:
                break
        if count == 0 and not self.problems:
            self._add(
                CsvProblem(self._header_line, None, "the file has a header but no product rows")
            )
        self._finished = True

    def _check_row(self, line: int, cells: list[str], seen: dict[int, int]) -> CsvRow | None:
        limits = self._limits
        width = self._width
        extra = len(cells) - width
        if extra > 0:
            while extra > 0 and not cells[-1].strip():
                cells.pop()  # trailing delimiters
                extra -= 1
        elif extra < 0:
            if len(cells) > self._last_needed:
                extra = 0  # only ignored columns (Errors) are missing at the end
            else:
                self._add(
                    CsvProblem(
                        line,
                        None,
                        f"this row has {len(cells)} cell(s), but the header has {width} "
                        f"columns ({COLUMNS_SENTENCE})",
                    )
                )
                return None
        at_urls = self._urls_at
        at_serial = self._serial_at + (extra if self._serial_at > at_urls else 0)
        at_name = self._name_at + (extra if self._name_at > at_urls else 0)
        serial, product_name = cells[at_serial], cells[at_name]
        urls_cell = ",".join(cells[at_urls : at_urls + 1 + extra]) if extra else cells[at_urls]
        problems_before = len(self.problems)

        value = parse_serial(serial)
        if isinstance(value, str):
            self._add_at(line, cells, at_serial, Column.SERIAL, value)
        elif (first := seen.setdefault(value, line)) != line:
            message = f"serial number {value} is already used on line {first}"
            self._add_at(line, cells, at_serial, Column.SERIAL, message)
        if not product_name.strip():
            self._add_at(line, cells, at_name, Column.NAME, "the product name is empty")

        urls, url_problems = parse_urls(urls_cell, limits.max_urls_per_row, limits.max_url_length)
        for offset, message in url_problems:
            if extra:
                message += (
                    f" (this row has {len(cells)} cells for {width} columns; "
                    "a product name with a comma must be in double quotes)"
                )
            lines_in = line_breaks(urls_cell[:offset])
            self._add_at(line, cells, at_urls, Column.URLS, message, lines_in)
        if len(self.problems) != problems_before or self._stopped:
            return None
        return CsvRow(line, serial, product_name, urls_cell, tuple(urls))

    def _add_at(
        self,
        line: int,
        cells: list[str],
        index: int,
        column: Column,
        message: str,
        lines_in: int = 0,
    ) -> None:
        """Add a problem on the physical line of cell ``index`` (+ lines into the cell)."""
        if self._cell_lines:
            line += line_breaks("".join(cells[:index])) + lines_in
        self._add(CsvProblem(line, self._names[column], message))

    def _add(self, problem: CsvProblem) -> None:
        if len(self.problems) >= self._limits.max_errors:
            self.truncated = True
            self._stopped = True
            return
        self.problems.append(problem)
