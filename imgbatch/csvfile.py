"""Read and validate the input CSV (SPEC §1); ``csvout`` writes the output CSV (SPEC §4).

Pure: a binary stream in, typed rows out; no database, no HTTP. The cell rules live in
``csvcheck``.

Reading is streamed: the bytes are decoded incrementally (strict UTF-8, a BOM noted and
dropped) and parsed by the csv module one record at a time, so memory stays flat however
long the file is. Only the serials seen so far are remembered, to find duplicates.

Choices beyond the letter of the SPEC:

- Line numbers are physical (header = 1) and point at the offending cell itself: a URL
  on the fourth line of a quoted multi-line cell is reported on that line.
- Spaces after a comma are skipped (``1, SKU1, "a,b"`` reads as intended), so cell values
  "as received" have no leading spaces.
- Blank lines, and rows whose cells are all blank (",,"), are skipped. Empty header cells
  and empty cells at the end of a row (trailing commas, as Excel writes them) are ignored.
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

import codecs
import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from imgbatch.config import Settings
from imgbatch.csvcheck import (
    CANONICAL_NAMES,
    Column,
    column_for,
    describe_separator,
    line_breaks,
    parse_serial,
    parse_urls,
    quote,
    refuse_non_text,
    syntax_problem,
)
from imgbatch.errors import CsvInvalid, CsvProblem, CsvUnreadable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "Column",
    "CsvHeader",
    "CsvLimits",
    "CsvReader",
    "CsvRow",
    "open_csv",
]

_COLUMNS_SENTENCE = "S. No., Product Name and Input Image Urls"


@dataclass(frozen=True)
class CsvLimits:
    max_rows: int
    max_urls_per_row: int
    max_url_length: int
    max_errors: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CsvLimits:
        return cls(
            max_rows=settings.max_rows,
            max_urls_per_row=settings.max_urls_per_row,
            max_url_length=settings.max_url_length,
            max_errors=settings.max_csv_errors,
        )

    @property
    def max_cell_chars(self) -> int:
        """Room for a full URL cell, with generous separators, plus some slack."""
        return self.max_urls_per_row * (self.max_url_length + 16) + 4096


@dataclass(frozen=True)
class CsvHeader:
    columns: tuple[tuple[Column, str], ...]  # in input order, with the user's header text
    bom: bool  # the input started with a UTF-8 BOM

    @classmethod
    def default(cls) -> CsvHeader:
        """The header of the original format, for output that has no input header."""
        return cls(tuple((column, CANONICAL_NAMES[column]) for column in Column), bom=False)

    def name(self, column: Column) -> str:
        """The user's header text for ``column``."""
        return next(text for each, text in self.columns if each is column)

    def to_json(self) -> dict[str, Any]:
        return {"columns": [[column.value, text] for column, text in self.columns], "bom": self.bom}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CsvHeader:
        columns = tuple((Column(column), str(text)) for column, text in data["columns"])
        if sorted(column for column, _ in columns) != sorted(Column):
            raise ValueError(f"a CSV header needs each column once, got {columns!r}")
        return cls(columns, bool(data["bom"]))


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int  # physical line where the row starts (header is line 1)
    serial: str  # as received ("1." stays "1.")
    product_name: str  # as received
    urls_cell: str  # as received; an unquoted list's cells joined back with ","
    urls: tuple[str, ...]  # parsed, stripped, in order


def open_csv(data: BinaryIO, limits: CsvLimits) -> CsvReader:
    """Start reading ``data`` (from its current position) and read the header.

    Raises CsvUnreadable for a file that is not CSV text at all, CsvInvalid for a header
    that is wrong. ``data`` is read but never closed.
    """
    buffered = io.BufferedReader(_Borrowed(data), buffer_size=64 * 1024)
    head = buffered.peek(4)[:4]
    refuse_non_text(head)
    bom = head.startswith(codecs.BOM_UTF8)
    text = io.TextIOWrapper(
        buffered, encoding="utf-8-sig" if bom else "utf-8", errors="strict", newline=""
    )
    # The limit is process-wide in the csv module: only ever raise it.
    if csv.field_size_limit() < limits.max_cell_chars:
        csv.field_size_limit(limits.max_cell_chars)
    return CsvReader(text, bom, limits)


class CsvReader:
    """Validates rows as they stream; made by ``open_csv``.

    Use: ``for row in reader.rows(): ...`` then ``reader.raise_if_invalid()``.
    """

    def __init__(self, text: io.TextIOWrapper, bom: bool, limits: CsvLimits) -> None:
        self.problems: list[CsvProblem] = []
        self.truncated = False  # problems stopped being collected at limits.max_errors
        self._text = text
        self._limits = limits
        self._stopped = False
        self._csv = csv.reader(self._lines(), skipinitialspace=True, strict=True)
        self._records = self._read_records()
        self.header = self._read_header(bom)
        self._rows: Iterator[CsvRow] | None = None
        self._finished = False

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

    def _lines(self) -> Iterator[str]:
        """The decoded physical lines; turns bytes that are not UTF-8 text into CsvUnreadable."""
        count = 0
        try:
            for line in self._text:
                count += 1
                if "\x00" in line:
                    raise CsvUnreadable(
                        f"line {count} holds a NUL byte: this is a binary file, not CSV text"
                    )
                yield line
        except UnicodeDecodeError as exc:
            # The undecodable chunk starts within the line after the last one read.
            line_no = count + 1 + line_breaks(exc.object[: exc.start].decode("latin-1"))
            raise CsvUnreadable(
                f"the file is not UTF-8 text (line {line_no} has a byte that is not UTF-8); "
                'save it as "CSV UTF-8"'
            ) from exc

    def _read_records(self) -> Iterator[tuple[int, list[str]]]:
        """Non-blank records with the physical line each starts on."""
        reader = self._csv
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

    def _read_header(self, bom: bool) -> CsvHeader:
        first = next(self._records, None)
        if self.problems:
            raise CsvInvalid(list(self.problems))
        if first is None:
            raise CsvUnreadable("the file is empty: it needs a header row and product rows")
        line, cells = first
        self._header_line = line
        names = list(cells)
        while len(names) > 1 and not names[-1].strip():
            names.pop()  # trailing commas
        header = _parse_header(line, names, bom, self._limits.max_errors)
        self._names = {column: text.strip() for column, text in header.columns}
        order = [column for column, _ in header.columns]
        self._serial_at = order.index(Column.SERIAL)
        self._name_at = order.index(Column.NAME)
        self._urls_at = order.index(Column.URLS)
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
        extra = len(cells) - 3
        if extra > 0:
            while extra > 0 and not cells[-1].strip():
                cells.pop()  # trailing commas
                extra -= 1
        elif extra < 0:
            self._add(
                CsvProblem(
                    line,
                    None,
                    f"this row has {len(cells)} cell(s), but the header has 3 columns "
                    f"({_COLUMNS_SENTENCE})",
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
                    f" (this row has {len(cells)} cells for 3 columns; "
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
        line += line_breaks("".join(cells[:index])) + lines_in
        self._add(CsvProblem(line, self._names[column], message))

    def _add(self, problem: CsvProblem) -> None:
        if len(self.problems) >= self._limits.max_errors:
            self.truncated = True
            self._stopped = True
            return
        self.problems.append(problem)


def _parse_header(line: int, names: list[str], bom: bool, max_errors: int) -> CsvHeader:
    recognised = [column_for(name) for name in names]
    if not any(recognised):
        hint = describe_separator(names) or "it is: " + ", ".join(quote(n) for n in names)
        message = f"the first row must be a header naming the columns {_COLUMNS_SENTENCE}; {hint}"
        raise CsvInvalid([CsvProblem(line, None, message)])
    problems: list[CsvProblem] = []
    found: dict[Column, str] = {}
    columns: list[tuple[Column, str]] = []
    for position, (text, column) in enumerate(zip(names, recognised, strict=True), 1):
        name = text.strip()
        if column is None:
            if name:
                message = f"unknown column {quote(name)}: the columns are {_COLUMNS_SENTENCE}"
                problems.append(CsvProblem(line, name, message))
            else:
                problems.append(CsvProblem(line, None, f"header cell {position} is empty"))
        elif column in found:
            message = f"column {quote(name)} repeats the column {quote(found[column])}"
            problems.append(CsvProblem(line, name, message))
        else:
            found[column] = name
            columns.append((column, text))
    for column in Column:
        if column not in found:
            message = f"the header has no {CANONICAL_NAMES[column]} column"
            problems.append(CsvProblem(line, None, message))
    if problems:
        raise CsvInvalid(problems[:max_errors], truncated=len(problems) > max_errors)
    return CsvHeader(tuple(columns), bom)


class _Borrowed(io.RawIOBase):
    """Reads the caller's stream without ever closing it (TextIOWrapper closes what it wraps)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)
