"""The ``Storage`` base: key validation, and a backend's failures mapped to STORAGE_ERROR."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar
from uuid import UUID

from imgbatch.errors import ErrorCode, ImageError

# "<request uuid, canonical lowercase>/<image id>.jpg": nothing else can name a file, so no
# key can climb out of the root (no "..", no leading "/", no backslash, no empty segment).
_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9]{1,19}\.jpg")


# Keys are deterministic per image and overwritten only with the same picture, so an
# output may be cached forever (S3's object header, and GET /files/{key}'s answer).
CACHE_FOREVER = "public, max-age=31536000, immutable"


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

    def delete(self, key: str) -> None:
        """Remove ``key`` if it is there (an output stored for an image cancelled meanwhile)."""
        validate_key(key)
        with self._mapped_failures(f"could not delete {key} from {self}"):
            self._delete(key)

    def sweep(self) -> int:
        """At start-up: remove what killed writes left behind; returns how many."""
        return 0

    def close(self) -> None:  # noqa: B027  (optional hook: most backends hold nothing)
        """Release connections; the default holds none."""

    @abstractmethod
    def _put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _copy(self, source: str, target: str) -> bool: ...

    @abstractmethod
    def _url_for(self, key: str) -> str: ...

    @abstractmethod
    def _check(self) -> None: ...

    def _explain(self, exc: Exception) -> str:
        """A person-readable cause for one of ``failures``."""
        return str(exc) or type(exc).__name__

    @contextmanager
    def _mapped_failures(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self.failures as exc:
            raise ImageError(ErrorCode.STORAGE_ERROR, f"{doing}: {self._explain(exc)}") from exc
