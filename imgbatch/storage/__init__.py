"""Where output images go: a small ``Storage`` base and one module per backend.

The backend is picked by the scheme of ``Settings.effective_storage_url``:

    file:///abs/path       LocalStorage (``imgbatch.storage.local``), served by ``GET /files/{key}``
    s3://bucket[/prefix]   S3Storage (``imgbatch.storage.s3``), any S3-compatible endpoint

The base does the shared work: it validates keys before any backend sees them and maps a
backend's own failures to ``ImageError(ErrorCode.STORAGE_ERROR)``. A backend fills in
``_put``, ``_copy``, ``_url_for`` and ``_check``, and names the exceptions that mean "the
store failed".
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit
from uuid import UUID

from imgbatch.errors import ErrorCode, ImageError

if TYPE_CHECKING:
    from imgbatch.config import Settings

# "<request uuid, canonical lowercase>/<image id>.jpg": nothing else can name a file, so no
# key can climb out of the root (no "..", no leading "/", no backslash, no empty segment).
_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9]{1,19}\.jpg")


def validate_key(key: str) -> str:
    """Return ``key`` when it looks like ``"<uuid>/<int>.jpg"``; raise ``ValueError`` otherwise."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"invalid storage key {key!r}: expected '<uuid>/<int>.jpg'")
    return key


def image_key(request_id: UUID | str, image_id: int) -> str:
    """The deterministic key of one output image: re-processing it overwrites, never duplicates."""
    return validate_key(f"{UUID(str(request_id))}/{int(image_id)}.jpg")


class Storage(ABC):
    """A place to put output JPEGs and hand out URLs for them. Safe to share between threads."""

    #: This backend's exceptions that mean "the store failed"; mapped to STORAGE_ERROR.
    failures: ClassVar[tuple[type[Exception], ...]] = ()

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what is there.

        Raises ``ValueError`` for an invalid key and ``ImageError(STORAGE_ERROR)`` when the
        store fails.
        """
        validate_key(key)
        with self._mapped_failures(f"could not store {key} in {self}"):
            self._put(key, data)

    def copy(self, source: str, target: str) -> bool:
        """Give ``target`` the object stored at ``source``, replacing what is there, without
        the bytes passing through this process (a hard link, a server-side copy). False when
        ``source`` does not exist (any more); ``ImageError(STORAGE_ERROR)`` when the store
        fails. The two keys stay independent: deleting one leaves the other.
        """
        validate_key(source)
        validate_key(target)
        with self._mapped_failures(f"could not copy {source} to {target} in {self}"):
            return self._copy(source, target)

    def url_for(self, key: str) -> str:
        """The absolute URL handed to users for ``key``.

        Raises ``ValueError`` for an invalid key and ``ImageError(STORAGE_ERROR)`` when no URL
        can be made (e.g. S3 presigning without credentials).
        """
        validate_key(key)
        with self._mapped_failures(f"no URL for {key} in {self}"):
            return self._url_for(key)

    def check(self) -> None:
        """Readiness probe: raise ``ImageError(STORAGE_ERROR)`` when the store is not usable."""
        with self._mapped_failures(f"{self} is not usable"):
            self._check()

    def close(self) -> None:  # noqa: B027  (optional hook: most backends hold nothing)
        """Release connections; the default holds none."""

    @abstractmethod
    def _put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _copy(self, source: str, target: str) -> bool: ...

    @abstractmethod
    def _url_for(self, key: str) -> str: ...

    @abstractmethod
    def _check(self) -> None: ...

    def _explain(self, exc: Exception) -> str:
        """A person-readable cause for one of ``failures``."""
        return str(exc) or type(exc).__name__

    def _is_transient(self, exc: Exception) -> bool:
        """Whether trying again later may succeed (sets ``ImageError.retryable``)."""
        return False

    @contextmanager
    def _mapped_failures(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self.failures as exc:
            raise ImageError(
                ErrorCode.STORAGE_ERROR,
                f"{doing}: {self._explain(exc)}",
                retryable=self._is_transient(exc),
            ) from exc


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


from imgbatch.storage.local import LocalStorage  # noqa: E402  (needs Storage defined above)

__all__ = ["LocalStorage", "Storage", "image_key", "open_storage", "validate_key"]
