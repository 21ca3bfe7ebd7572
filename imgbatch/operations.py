"""What the API and the CLI both do with a request: submit a CSV, stream its output CSV
and its errors file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import BinaryIO

from imgbatch.csvfile import CsvHeader, CsvLimits, errors_csv, open_csv, output_csv
from imgbatch.db.ingest import create_request
from imgbatch.db.models import Request
from imgbatch.db.reads import error_rows, output_rows
from imgbatch.options import OutputOptions
from imgbatch.runtime import Services


def submit_csv(
    services: Services,
    data: BinaryIO,
    *,
    webhook_url: str | None = None,
    owner: str | None = None,
    options: OutputOptions | None = None,
    runner_id: str | None = None,
    request_id: str | None = None,
) -> str:
    """Validate and store a CSV as a new request, and wake the upkeep; returns its id
    (``request_id`` when given: an idempotent upload claims its id first). With
    ``runner_id`` the request is pinned to that runner while it lives.

    Raises CsvError (nothing stored) when the file is rejected. ``options`` default to
    the configured ones (``OutputOptions.defaults``).
    """
    request_id = request_id or str(uuid.uuid4())
    reader = open_csv(data, CsvLimits.from_settings(services.settings))
    create_request(
        services.engine,
        request_id=request_id,
        reader=reader,
        webhook_url=webhook_url,
        owner=owner,
        options=options or OutputOptions.defaults(services.settings),
        runner_id=runner_id,
    )
    services.wake()
    return request_id


def output_csv_text(services: Services, request: Request) -> Iterator[str]:
    """The output CSV of a request, streamed from the database in batches."""
    storage = services.storage

    def rows() -> Iterator[tuple[str, str, str, list[str | None]]]:
        for serial, name, urls_cell, keys in output_rows(services.engine, request_id=request.id):
            yield serial, name, urls_cell, [storage.url_for(key) if key else None for key in keys]

    return output_csv(CsvHeader.from_json(request.csv_header), rows())


def errors_csv_text(services: Services, request: Request) -> Iterator[str]:
    """The errors file of a request (SPEC §4): the rows with a failed image, streamed."""
    rows = error_rows(services.engine, request_id=request.id)
    return errors_csv(CsvHeader.from_json(request.csv_header), rows)


def in_blocks(lines: Iterator[str], size: int = 256 * 1024) -> Iterator[str]:
    """Join lines into blocks of about ``size`` characters.

    A streaming response hops to a worker thread for every item of a sync iterator;
    one hop per CSV line would make a 100,000-row download take seconds of hopping.
    """
    block: list[str] = []
    length = 0
    for line in lines:
        block.append(line)
        length += len(line)
        if length >= size:
            yield "".join(block)
            block, length = [], 0
    if block:
        yield "".join(block)
