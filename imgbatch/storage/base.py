"""The ``Storage`` base: key validation, and a backend's failures mapped to STORAGE_ERROR."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import ClassVar
from uuid import UUID

from imgbatch.errors import ErrorCode, ImageError
from imgbatch.options import CONTENT_TYPES, OutputOptions

# "<request uuid, canonical lowercase>/<image id>-<options key>.<extension>" (or the
# "<uuid>/<image id>.jpg" of requests from before output options): nothing else can name a
# file, so no key can climb out of the root (no "..", no leading "/", no backslash, no
# empty segment).
_KEY = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9]{1,19}"
    r"(?:-(?:jpeg|webp|avif)-q[0-9]{1,2}(?:-max[0-9]{2,5})?)?\.(?:jpg|webp|avif)"
)


# Keys are deterministic per image and overwritten only with the same picture, so an
# output may be cached forever (S3's object header, and GET /files/{key}'s answer).
CACHE_FOREVER = "public, max-age=31536000, immutable"


def validate_key(key: str) -> str:
    """Return ``key`` when it looks like ``"<uuid>/<int>-<options>.<ext>"``; raise
    ``ValueError`` otherwise."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"invalid storage key {key!r}: expected '<uuid>/<int>-<options>.<ext>'")
    return key


def image_key(request_id: UUID | str, image_id: int, options: OutputOptions) -> str:
    """The deterministic key of one output image: re-processing it overwrites, never
    duplicates; it names the options (``12-webp-q55.webp``), so outputs of one picture
    under different options never share a key."""
    name = f"{int(image_id)}-{options.key}.{options.extension}"
    return validate_key(f"{UUID(str(request_id))}/{name}")


def content_type(key: str) -> str:
    """The content type an output is served with, from its key's extension."""
    return CONTENT_TYPES[validate_key(key).rsplit(".", 1)[1]]


class Storage(ABC):
    """A place to put output images and hand out URLs for them. Safe to share between threads."""

    #: This backend's exceptions that mean "the store failed"; mapped to STORAGE_ERROR.
    failures: ClassVar[tuple[type[Exception], ...]] = ()
    #: A copy costs a few system calls, not a round trip: a chunk's copies run one after
    #: another in one thread, rather than each in a thread of its own.
    local_copies: ClassVar[bool] = False

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

    def delete(self, keys: Iterable[str]) -> None:
        """Remove the images under ``keys``; a key with nothing stored is not an error.

        Raises ``ValueError`` for an invalid key and ``ImageError(STORAGE_ERROR)`` when the
        store fails (what was removed before the failure stays removed).
        """
        checked = [validate_key(key) for key in keys]
        if checked:
            with self._mapped_failures(f"could not delete from {self}"):
                self._delete(checked)

    def keys_of(self, request_id: str) -> list[str]:
        """Every key stored for one request, including any no row records (a crash
        between the store and the record)."""
        prefix = str(UUID(request_id))
        with self._mapped_failures(f"could not list {prefix}/ in {self}"):
            return [key for key in self._keys_of(prefix) if _KEY.fullmatch(key)]

    def sweep(self) -> int:
        """At start-up: remove what killed writes left behind; returns how many."""
        return 0

    def close(self) -> None:  # noqa: B027  (optional hook: most backends hold nothing)
        """Release connections; the default holds none."""

    @abstractmethod
    def _put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _delete(self, keys: list[str]) -> None: ...

    @abstractmethod
    def _keys_of(self, prefix: str) -> Iterable[str]:
        """Keys stored under ``"<prefix>/"``."""

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
