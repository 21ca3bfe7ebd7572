"""Decode a response body as it streams, never holding more than the image limit.

An HTTP client inflates each network read in one call: a 64 KiB read of a gzip bomb
becomes 64 MiB at once, before any size check can run. Here each read is inflated with an output
bound of the room left under the limit, so a bomb stops at the limit whatever its ratio.
We ask for ``identity``; gzip and deflate are still decoded because servers send them
anyway. Any other encoding (br, zstd, stacked encodings) cannot be bounded here and is
refused rather than passed on undecoded.
"""

from __future__ import annotations

import zlib

from imgbatch.fetch.failures import BadEncoding, TooLarge

_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS  # zlib detects either header
_RAW_DEFLATE = -zlib.MAX_WBITS


class BoundedDecoder:
    """Feed raw body chunks, get decoded bytes; raises TooLarge past ``limit`` in total."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise BadEncoding(
                f"the server sent the body encoded as {encoding!r}, which we did not ask for"
            )
        self._limit = limit
        self._total = 0
        self._deflate = encoding == "deflate"
        self._inflater = None if encoding == "identity" else zlib.decompressobj(_GZIP_OR_ZLIB)
        self._started = False

    def feed(self, chunk: bytes) -> bytes:
        if self._inflater is None:
            return self._count(chunk)
        room = self._limit - self._total
        try:
            out = self._inflater.decompress(chunk, room + 1)
        except zlib.error as exc:
            if not (self._deflate and not self._started):
                raise BadEncoding(f"the compressed body is damaged: {exc}") from exc
            # Some servers send raw deflate without the zlib header the standard asks for.
            self._inflater = zlib.decompressobj(_RAW_DEFLATE)
            return self.feed(chunk)
        self._started = True
        # Output cut at room + 1 bytes means more was waiting: past the limit either way.
        return self._count(out)

    def flush(self) -> bytes:
        if self._inflater is None:
            return b""
        return self._count(self._inflater.flush())

    def _count(self, data: bytes) -> bytes:
        self._total += len(data)
        if self._total > self._limit:
            raise TooLarge(self._limit)
        return data
