"""The header row of an upload (SPEC §1), and how the file was written.

``CsvHeader`` is what a request keeps of its input (the request's ``csv_header`` JSON):
the user's column names in their order, and the dialect the output CSV repeats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imgbatch.csvcheck import CANONICAL_NAMES, Column, column_for, quote
from imgbatch.errors import CsvInvalid, CsvProblem

COLUMNS_SENTENCE = "S. No., Product Name and Input Image Urls"
# The last column of the errors file (SPEC §4): ignored on upload, so that file can be
# fixed and uploaded again as it is.
ERRORS_COLUMN = "Errors"


def is_errors_column(text: str) -> bool:
    return text.strip().casefold() == "errors"


@dataclass(frozen=True)
class CsvHeader:
    columns: tuple[tuple[Column, str], ...]  # in input order, with the user's header text
    bom: bool  # the output starts with a UTF-8 BOM (the input had one, or was a workbook)
    delimiter: str = ","  # the input's, repeated by the output CSV
    source: str = "csv"  # "csv", "csv-utf-16" or "xlsx": what was uploaded

    @classmethod
    def default(cls) -> CsvHeader:
        """The header of the original format, for output that has no input header."""
        return cls(tuple((column, CANONICAL_NAMES[column]) for column in Column), bom=False)

    def name(self, column: Column) -> str:
        """The user's header text for ``column``."""
        return next(text for each, text in self.columns if each is column)

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [[column.value, text] for column, text in self.columns],
            "bom": self.bom,
            "delimiter": self.delimiter,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CsvHeader:
        columns = tuple((Column(column), str(text)) for column, text in data["columns"])
        if sorted(column for column, _ in columns) != sorted(Column):
            raise ValueError(f"a CSV header needs each column once, got {columns!r}")
        # Requests stored before dialects were kept are comma-separated CSV.
        delimiter = str(data.get("delimiter", ","))
        return cls(columns, bool(data["bom"]), delimiter, str(data.get("source", "csv")))


@dataclass(frozen=True)
class ParsedHeader:
    header: CsvHeader
    width: int  # header cells, ignored ones included
    positions: dict[Column, int]  # cell index of each column


def parse_header(
    line: int, names: list[str], *, bom: bool, delimiter: str, source: str, max_errors: int
) -> ParsedHeader:
    """The header of ``names`` (the first row's cells); raises CsvInvalid listing problems."""
    recognised = [column_for(name) for name in names]
    if not any(recognised):
        message = (
            f"the first row must be a header naming the columns {COLUMNS_SENTENCE}; "
            "it is: " + ", ".join(quote(n) for n in names)
        )
        raise CsvInvalid([CsvProblem(line, None, message)])
    problems: list[CsvProblem] = []
    found: dict[Column, str] = {}
    columns: list[tuple[Column, str]] = []
    positions: dict[Column, int] = {}
    for position, (text, column) in enumerate(zip(names, recognised, strict=True)):
        name = text.strip()
        if column is None:
            if is_errors_column(name):
                continue
            if name:
                message = f"unknown column {quote(name)}: the columns are {COLUMNS_SENTENCE}"
                problems.append(CsvProblem(line, name, message))
            else:
                problems.append(CsvProblem(line, None, f"header cell {position + 1} is empty"))
        elif column in found:
            message = f"column {quote(name)} repeats the column {quote(found[column])}"
            problems.append(CsvProblem(line, name, message))
        else:
            found[column] = name
            columns.append((column, text))
            positions[column] = position
    for column in Column:
        if column not in found:
            message = f"the header has no {CANONICAL_NAMES[column]} column"
            problems.append(CsvProblem(line, None, message))
    if problems:
        raise CsvInvalid(problems[:max_errors], truncated=len(problems) > max_errors)
    header = CsvHeader(tuple(columns), bom, delimiter, source)
    return ParsedHeader(header, len(names), positions)
