"""Where output images go: a small ``Storage`` base and one module per backend.

The backend is picked by the scheme of ``Settings.effective_storage_url``:

    file:///abs/path       LocalStorage (``imgbatch.storage.local``), served by ``GET /files/{key}``
    s3://bucket[/prefix]   S3Storage (``imgbatch.storage.s3``), any S3-compatible endpoint

The base (``base.py``) does the shared work: it validates keys before any backend sees
them and maps a backend's own failures to ``ImageError(ErrorCode.STORAGE_ERROR)``. A
backend fills in ``_put``, ``_copy``, ``_url_for``, ``_check``, ``_delete`` and ``_keys_of``,
and names the exceptions that mean "the store failed".
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from imgbatch.storage.base import Storage, content_type, image_key, validate_key
from imgbatch.storage.local import LocalStorage

if TYPE_CHECKING:
    from imgbatch.config import Settings


def open_storage(settings: Settings) -> Storage:
    """The backend named by ``settings.effective_storage_url``; ``ValueError`` for a bad URL."""
    url = settings.effective_storage_url
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return LocalStorage.from_url(url, public_url=settings.public_url)
    if scheme == "s3":
        # Imported here: boto3 costs ~0.2 s to import, and local deployments never need it.
        from imgbatch.storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    raise ValueError(f"IMGBATCH_STORAGE_URL {url!r}: unsupported scheme, use file:// or s3://")


__all__ = ["LocalStorage", "Storage", "content_type", "image_key", "open_storage", "validate_key"]
