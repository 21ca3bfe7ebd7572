"""/files/{key}: stored output images, when storage is the local disk."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse

from imgbatch.api.deps import StorageDep
from imgbatch.storage.base import CACHE_FOREVER, content_type
from imgbatch.storage.local import LocalStorage

router = APIRouter(tags=["files"])


@router.get(
    "/files/{key:path}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}, "image/webp": {}, "image/avif": {}}},
        404: {"description": "no such image"},
    },
)
def get_file(key: str, storage: StorageDep, request: Request) -> Response:
    """A compressed image (JPEG, WebP or AVIF, by its extension), with an ETag and long
    cache headers."""
    if not isinstance(storage, LocalStorage):
        raise HTTPException(404, "images are not served here: storage is not local")
    try:
        path = storage.path_for(key)
    except (KeyError, ValueError):
        raise HTTPException(404, "no such image") from None
    if not path.is_file():
        raise HTTPException(404, "no such image")
    stat = path.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_FOREVER}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=content_type(key), headers=headers)
