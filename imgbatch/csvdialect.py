"""What kind of file an upload is, decided from its bytes and its header line (SPEC §1).

- The first bytes: a zip archive is a workbook (``xlsxfile``); an old binary workbook,
  an empty file and the like are refused at once. Otherwise it is text: UTF-16 when it
  starts with a UTF-16 byte order mark, else strict UTF-8 (a UTF-8 BOM is noted and
  dropped).
- The header line: the delimiter (comma, semicolon or tab) is the one that splits it
  into the most known column names; a tie goes to the comma. Rows are then read with that
  delimiter only: a semicolon inside a cell of a comma-separated file stays text.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, BinaryIO

from imgbatch.csvcheck import column_for, line_breaks
from imgbatch.csvheader import is_errors_column
from imgbatch.errors import CsvUnreadable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _typeshed import WriteableBuffer

DELIMITERS = (",", ";", "\t")
ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # .xls, .doc: OLE2 compound files


@dataclass
class CsvText:
    """A text upload: its decoded lines (the header line first) and its dialect."""

    lines: Iterator[str]
    encoding: str  # "utf-8" or "utf-16"
    bom: bool
    delimiter: str


def buffered(data: BinaryIO) -> io.BufferedReader:
    """``data`` buffered for peeking, without ever being closed by the wrappers around it."""
    return io.BufferedReader(_Borrowed(data), buffer_size=64 * 1024)


def is_workbook(head: bytes) -> bool:
    """True for a zip archive (an .xlsx); refuses what is no text and no workbook."""
    if not head:
        raise CsvUnreadable("the file is empty: it needs a header row and product rows")
    if head.startswith(_OLE_MAGIC):
        raise CsvUnreadable(
            "this is an old Excel workbook (.xls); save it as an Excel workbook (.xlsx) "
            'or as "CSV UTF-8"'
        )
    return head.startswith(ZIP_MAGIC)


def open_text(stream: io.BufferedReader) -> CsvText:
    """Decode ``stream`` and choose the delimiter from its first line."""
    head = stream.peek(4)[:4]
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    utf8_bom = head.startswith(codecs.BOM_UTF8)
    # The "utf-16" codec reads the BOM and the byte order it gives; "utf-8-sig" drops one.
    encoding = "utf-16" if utf16 else "utf-8-sig" if utf8_bom else "utf-8"
    text = io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline="")
    first = _first_line(text, "utf-16" if utf16 else "utf-8")
    return CsvText(
        lines=chain([first], text) if first else iter(()),
        encoding="utf-16" if utf16 else "utf-8",
        bom=utf16 or utf8_bom,
        delimiter=choose_delimiter(first),
    )


def _first_line(text: io.TextIOWrapper, encoding: str) -> str:
    try:
        return text.readline()
    except UnicodeDecodeError as exc:
        raise not_text(exc, 0, encoding) from exc


def not_text(exc: UnicodeDecodeError, lines_read: int, encoding: str) -> CsvUnreadable:
    """The 400 for bytes that do not decode, naming the line they are on."""
    # Counting line-break bytes works for UTF-16 too: its "\n" is one 0x0A byte and a 0x00.
    line = lines_read + 1 + line_breaks(exc.object[: exc.start].decode("latin-1"))
    if encoding == "utf-16":
        return CsvUnreadable(
            f"the file is not valid UTF-16 text (line {line} has bytes that are not UTF-16); "
            'save it as "CSV UTF-8"'
        )
    return CsvUnreadable(
        f"the file is not UTF-8 text (line {line} has a byte that is not UTF-8); "
        'save it as "CSV UTF-8"'
    )


def choose_delimiter(line: str) -> str:
    """The delimiter that splits the header line into the most known column names."""
    best, best_score = ",", 0
    for delimiter in DELIMITERS:
        if delimiter not in line:
            continue
        try:
            cells = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:
            continue
        score = sum(1 for cell in cells if column_for(cell) or is_errors_column(cell))
        if score > best_score:
            best, best_score = delimiter, score
    return best


class _Borrowed(io.RawIOBase):
    """Reads the caller's stream without ever closing it (TextIOWrapper closes what it wraps).

    Seekable when the stream is, so a workbook can be opened as a zip file in place.
    """

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._stream.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)
