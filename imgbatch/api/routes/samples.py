"""The sample CSV, and the demo photos its URLs point at.

The photos are served by the service itself, so a newcomer can process the sample
offline. Fetching them needs this address allowed (``make run`` sets
``IMGBATCH_ALLOW_PRIVATE_NETWORKS=127.0.0.1:8000``); with the default policy they fail
with ``blocked_address``, as any loopback URL must.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import FileResponse

from imgbatch.api.deps import OwnerDep, SettingsDep

router = APIRouter(tags=["samples"])

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PRODUCTS = (
    ("SKU1", ("chelsea.jpg", "coffee.jpg", "rocket.jpg")),
    ("SKU2", ("astronaut.jpg", "motorcycle_right.jpg", "retina.jpg")),
)


@router.get(
    "/api/v1/sample.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}}
)
def sample_csv(settings: SettingsDep, _owner: OwnerDep) -> Response:
    """A sample input CSV in the original format, pointing at this service's demo photos."""
    base = (settings.sample_base_url or settings.public_url).rstrip("/")
    lines = ["S. No.,Product Name,Input Image Urls"]
    for serial, (name, photos) in enumerate(PRODUCTS, start=1):
        urls = ",".join(f"{base}/samples/{photo}" for photo in photos)
        lines.append(f'{serial},{name},"{urls}"')
    return Response(
        "\n".join(lines) + "\n",
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sample.csv"'},
    )


@router.get(
    "/samples/{name}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such photo"}},
)
def sample_photo(name: str) -> FileResponse:
    """A demo photo used by the sample CSV."""
    if name not in {photo for _, photos in PRODUCTS for photo in photos}:
        raise HTTPException(404, "no such sample photo")
    return FileResponse(SAMPLES / name, media_type="image/jpeg")
