"""Output images as files under one directory, served by the API at ``GET /files/{key}``.

A write goes to a temporary sibling, ``.<file name>.<pid>.<random>.tmp``, renamed over the
target when complete. A process killed mid-write leaves its temporary file; start-up
sweeps those whose writer is gone (its pid is not running), or that are older than any
write takes (a writer on another machine sharing the disk), never a live write's.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from imgbatch.pids import pid_running
from imgbatch.storage.base import Storage, validate_key

log = logging.getLogger(__name__)

# ".<output file name>.<pid>.<random>.tmp", the output file name as keys spell it (with
# or without the options part: "12.jpg", "12-webp-q76-max2048.webp").
_TEMPORARY = re.compile(
    r"\.[0-9]{1,19}(?:-[a-z0-9-]+)?\.(?:jpg|webp|avif)\.(?P<pid>[0-9]+)\.[^.]+\.tmp"
)
# No write of one image takes this long: a temporary file this old is orphaned wherever
# its writer ran.
ORPHAN_SECONDS = 3600


class LocalStorage(Storage):
    failures = (OSError,)
    local_copies = True  # a hard link

    def __init__(self, root: Path, *, public_url: str) -> None:
        if not root.is_absolute():
            raise ValueError(f"local storage root must be absolute, got {root}")
        self.root = root
        self.public_url = public_url.rstrip("/")

    @classmethod
    def from_url(cls, url: str, *, public_url: str) -> LocalStorage:
        """``file:///abs/path`` (or ``file://localhost/abs/path``) to a storage rooted there."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
            raise ValueError(f"storage URL {url!r}: expected file:///absolute/path")
        return cls(Path(url2pathname(unquote(parts.path))), public_url=public_url)

    def __str__(self) -> str:
        return self.root.as_uri()

    @functools.cached_property
    def _real_root(self) -> Path:
        return self.root.resolve()  # once: resolving walks every component of the path

    def path_for(self, key: str) -> Path:
        """The file of ``key``, which may not exist yet.

        Raises ``ValueError`` for any key that is not an output key (``validate_key``), so
        traversal (``../``, absolute paths, backslashes) never reaches the file system.
        """
        path = self.root / validate_key(key)
        # Belt and braces: the key pattern already forbids escaping the root.
        if not path.resolve().is_relative_to(self._real_root):
            raise ValueError(f"storage key {key!r} escapes the storage root")
        return path

    def _url_for(self, key: str) -> str:
        return f"{self.public_url}/files/{key}"

    def _put(self, key: str, data: bytes) -> None:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write a temporary sibling and rename it over the target: readers see the old file or
        # the new one, never half of one, even if this process dies mid-write.
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                # Durable before it is recorded as stored: a power cut must not leave the
                # database pointing at an empty file.
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; let a front web server read it too
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def sweep(self) -> int:
        swept = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob("*/.*.tmp"):
            match = _TEMPORARY.fullmatch(path.name)
            if match is None:
                continue
            try:
                orphaned = not pid_running(int(match["pid"])) or (
                    time.time() - path.stat().st_mtime > ORPHAN_SECONDS
                )
                if orphaned:
                    path.unlink()
                    swept += 1
            except FileNotFoundError:
                continue  # its writer renamed it meanwhile
        if swept:
            log.info("removed %d temporary files of interrupted writes", swept)
        return swept

    def _copy(self, source: str, target: str) -> bool:
        source_path, target_path = self.path_for(source), self.path_for(target)
        if source_path == target_path:
            return source_path.is_file()
        target_path.parent.mkdir(parents=True, exist_ok=True)
        # Named like a put's temporary file: ".<seq>.jpg.<pid>.<random>.tmp".
        tmp = target_path.with_name(f".{target_path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            try:
                # A second name for the same file: no bytes copied. Deleting (unlinking)
                # either name leaves the other, and a put replaces a name with a new file.
                os.link(source_path, tmp)
            except FileNotFoundError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                try:  # a file system without hard links (or at its limit): copy the bytes
                    shutil.copyfile(source_path, tmp)
                except FileNotFoundError:
                    return False
                os.chmod(tmp, 0o644)
            os.replace(tmp, target_path)
        finally:
            # Renaming a link onto another name of the same file does nothing (POSIX):
            # the target was that file already, and the temporary name must go.
            tmp.unlink(missing_ok=True)
        return True

    def _check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Prove we can create a file here, not merely that the directory exists.
        with tempfile.TemporaryFile(dir=self.root):
            pass

    def _delete(self, keys: list[str]) -> None:
        folders = set()
        for key in keys:
            path = self.path_for(key)
            path.unlink(missing_ok=True)
            folders.add(path.parent)
        for folder in folders:
            # Only an empty folder goes: another writer may have put a file there meanwhile.
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _keys_of(self, prefix: str) -> Iterator[str]:
        folder = self.root / prefix
        if folder.is_dir():
            for entry in folder.iterdir():
                if not entry.name.startswith("."):  # a write in progress
                    yield f"{prefix}/{entry.name}"
