"""/api/v1/requests: upload a CSV, follow it, fetch its results, cancel or retry it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, HTTPException, Response, UploadFile
from fastapi.responses import StreamingResponse

from imgbatch.api.deps import (
    EngineDep,
    Limit,
    Offset,
    OwnerDep,
    RequestDep,
    ServicesDep,
    SettingsDep,
)
from imgbatch.api.guards import earlier_request, enforce_limits, fingerprint
from imgbatch.api.schemas import CsvErrorItem, ImageItem, Page, ProductItem, StatusBody
from imgbatch.config import Settings
from imgbatch.db.models import TERMINAL_STATUSES
from imgbatch.db.reads import get_request, list_requests, products_page
from imgbatch.db.tenants import forget_upload
from imgbatch.db.work import cancel_request, retry_request
from imgbatch.deletion import Deletion, try_delete
from imgbatch.errors import CsvError, CsvInvalid, ImageError
from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.operations import errors_csv_text, in_blocks, output_csv_text, submit_csv
from imgbatch.options import OptionsInvalid, OutputOptions

router = APIRouter(prefix="/api/v1", tags=["requests"])

UPLOAD_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"description": "the file cannot be read as CSV (empty, binary, not UTF-8 or UTF-16)"},
    409: {"description": "the Idempotency-Key was used with a different file or options"},
    413: {
        "description": "the file is larger than IMGBATCH_MAX_UPLOAD_BYTES, or a workbook "
        "unpacks to more than IMGBATCH_MAX_WORKBOOK_BYTES"
    },
    422: {"description": "wrong headers or rows: every error with its line and column"},
    429: {"description": "the API key's pending images or uploads per minute are over the limit"},
}
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="the same key and file within 24 hours answer the earlier request (200)",
    ),
]


def upload(
    services: ServicesDep,
    owner: OwnerDep,
    response: Response,
    file: Annotated[
        UploadFile, File(description="the CSV (or .xlsx workbook) of products and image URLs")
    ],
    webhook_url: Annotated[str | None, Form(description="called when the request finishes")] = None,
    idempotency_key: IdempotencyKeyHeader = None,
    quality: Annotated[
        str | None,
        Form(description="1-95 (default: IMGBATCH_QUALITY, mapped to the format's scale)"),
    ] = None,
    format: Annotated[
        str | None, Form(description="jpeg, webp or avif (default: IMGBATCH_FORMAT)")
    ] = None,
    max_size: Annotated[
        str | None,
        Form(description="longest side in pixels, 16-16384 (default: IMGBATCH_MAX_SIZE)"),
    ] = None,
) -> StatusBody:
    """Validate the CSV and store the request; processing starts at once (202)."""
    settings = services.settings
    webhook_url = _checked_webhook_url(webhook_url, services)
    options = _checked_options(settings, quality=quality, format=format, max_size=max_size)
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise HTTPException(
            413, f"the file is {file.size} bytes; the limit is {settings.max_upload_bytes}"
        )
    claim = None
    if idempotency_key:
        claim = {
            "owner": owner or "",
            "key": idempotency_key,
            "fingerprint": fingerprint(
                file.file, {"webhook_url": webhook_url, "options": options.key}
            ),
        }
        if earlier := earlier_request(services, **claim):
            return _replayed(earlier, services, response)
    if owner is not None:
        enforce_limits(services, owner)
    request_id = str(uuid.uuid4())
    if claim and (earlier := earlier_request(services, **claim, request_id=request_id)):
        return _replayed(earlier, services, response)
    try:
        _submit(
            services,
            file,
            webhook_url=webhook_url,
            owner=owner,
            options=options,
            request_id=request_id,
        )
    except BaseException:
        if claim:
            forget_upload(
                services.engine, owner=claim["owner"], key=claim["key"], request_id=request_id
            )
        raise
    return _created(request_id, services, response)


def _created(request_id: str, services: ServicesDep, response: Response) -> StatusBody:
    response.headers["Location"] = f"{services.settings.public_url}/api/v1/requests/{request_id}"
    return _fresh_status(request_id, services)


def _replayed(request_id: str, services: ServicesDep, response: Response) -> StatusBody:
    """The answer to a repeated upload: the earlier request, 200 rather than 202."""
    response.status_code = 200
    return _created(request_id, services, response)


def _submit(
    services: ServicesDep,
    file: UploadFile,
    *,
    webhook_url: str | None,
    owner: str | None,
    options: OutputOptions,
    request_id: str,
) -> None:
    try:
        submit_csv(
            services,
            file.file,
            webhook_url=webhook_url,
            owner=owner,
            options=options,
            request_id=request_id,
        )
    except CsvInvalid as invalid:
        errors = [CsvErrorItem(**vars(problem)).model_dump() for problem in invalid.problems]
        raise HTTPException(
            422, {"errors": errors, "truncated": invalid.truncated, "message": str(invalid)}
        ) from None
    except CsvError as error:
        raise HTTPException(error.status_code, str(error)) from None


def _checked_webhook_url(url: str | None, services: ServicesDep) -> str | None:
    if url is None or not url.strip():
        return None
    try:
        AddressPolicy.from_settings(services.settings).check_url(url.strip())
    except ImageError as error:
        raise HTTPException(
            422, {"errors": [{"line": 0, "column": "webhook_url", "message": error.message}]}
        ) from None
    return url.strip()


def _checked_options(settings: Settings, **fields: str | None) -> OutputOptions:
    try:
        return OutputOptions.chosen(settings, **fields)
    except OptionsInvalid as invalid:
        raise HTTPException(
            422, {"errors": [{"line": 0, "column": invalid.field, "message": invalid.message}]}
        ) from None


router.post("/requests", status_code=202, response_model=StatusBody, responses=UPLOAD_RESPONSES)(
    upload
)


@router.get("/requests", response_model=Page[StatusBody])
def list_all(
    engine: EngineDep,
    settings: SettingsDep,
    owner: OwnerDep,
    offset: Offset = 0,
    limit: Limit = 50,
) -> Page[StatusBody]:
    """Recent requests, newest first (with API keys: the caller's own)."""
    requests, total = list_requests(engine, offset=offset, limit=limit, owner=owner)
    return Page[StatusBody](
        items=[StatusBody.of(r, settings) for r in requests],
        total=total,
        offset=offset,
        limit=limit,
    )


async def status(request: RequestDep, settings: SettingsDep) -> StatusBody:
    """The status body: counters, progress, and the output CSV URL once finished."""
    return StatusBody.of(request, settings)


router.get("/requests/{request_id}", response_model=StatusBody)(status)


@router.get("/requests/{request_id}/products", response_model=Page[ProductItem])
def products(
    request: RequestDep, services: ServicesDep, offset: Offset = 0, limit: Limit = 50
) -> Page[ProductItem]:
    """Products in input order with their images in URL order."""
    page = products_page(services.engine, request_id=request.id, offset=offset, limit=limit)
    items = [
        ProductItem(
            serial=item.product.serial,
            product_name=item.product.product_name,
            images=[ImageItem.of(image, services.storage) for image in item.images],
        )
        for item in page
    ]
    return Page[ProductItem](items=items, total=request.total_products, offset=offset, limit=limit)


@router.get(
    "/requests/{request_id}/output.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, 409: {"description": "not finished yet"}},
)
def output(request: RequestDep, services: ServicesDep) -> StreamingResponse:
    """The output CSV: the input's columns, then one output URL per input URL."""
    if request.status not in TERMINAL_STATUSES:
        raise HTTPException(409, StatusBody.of(request, services.settings).model_dump(mode="json"))
    return StreamingResponse(
        in_blocks(output_csv_text(services, request)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{request.id}.csv"'},
    )


@router.get(
    "/requests/{request_id}/errors.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, 409: {"description": "not finished yet"}},
)
def errors(request: RequestDep, services: ServicesDep) -> StreamingResponse:
    """The errors file: the rows with a failed image, only the failed URLs, then Errors.
    Fix the URLs and upload it again as it is to retry just those images."""
    if request.status not in TERMINAL_STATUSES:
        raise HTTPException(409, StatusBody.of(request, services.settings).model_dump(mode="json"))
    return StreamingResponse(
        in_blocks(errors_csv_text(services, request)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{request.id}-errors.csv"'},
    )


@router.post("/requests/{request_id}/cancel", response_model=StatusBody)
def cancel(request: RequestDep, services: ServicesDep) -> StatusBody:
    """Stop outstanding work; 409 if the request had already finished."""
    if not cancel_request(services.engine, request_id=request.id):
        raise HTTPException(409, StatusBody.of(request, services.settings).model_dump(mode="json"))
    return _fresh_status(request.id, services)


@router.post("/requests/{request_id}/retry", response_model=StatusBody, status_code=202)
def retry(request: RequestDep, services: ServicesDep) -> StatusBody:
    """Re-queue the failed images of a finished request (and the cancelled ones of a
    cancelled request); 409 while it runs or when nothing failed."""
    if not retry_request(services.engine, request_id=request.id):
        raise HTTPException(409, StatusBody.of(request, services.settings).model_dump(mode="json"))
    services.wake()
    return _fresh_status(request.id, services)


@router.delete(
    "/requests/{request_id}",
    status_code=204,
    response_class=Response,
    responses={409: {"description": "the request is still running: cancel it first"}},
)
def delete(request: RequestDep, services: ServicesDep) -> Response:
    """Delete a finished or cancelled request: its rows and every image it stored."""
    outcome = try_delete(services.engine, services.storage, request.id)
    if outcome is Deletion.RUNNING:
        raise HTTPException(409, StatusBody.of(request, services.settings).model_dump(mode="json"))
    if outcome is Deletion.NOT_FOUND:  # deleted meanwhile by another call
        raise HTTPException(404, f"no request with id {request.id!r}")
    return Response(status_code=204)


def _fresh_status(request_id: str, services: ServicesDep) -> StatusBody:
    found = get_request(services.engine, request_id=request_id)
    assert found is not None
    return StatusBody.of(found, services.settings)
