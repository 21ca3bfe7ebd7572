"""The storage seam: one contract run against local files and S3 (moto's real server)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest

from imgbatch.config import Settings
from imgbatch.errors import ErrorCode, ImageError
from imgbatch.options import OutputOptions
from imgbatch.runtime import open_services
from imgbatch.storage import (
    LocalStorage,
    Storage,
    content_type,
    image_key,
    open_storage,
    validate_key,
)
from imgbatch.storage.base import CACHE_FOREVER
from imgbatch.storage.s3 import S3Storage
from tests.s3server import MotoS3

PUBLIC_URL = "http://imgbatch.test:8000"
REQUEST_ID = "3f2c9a1e-7b4d-4c1a-9e2f-0123456789ab"
KEY = f"{REQUEST_ID}/1234.jpg"

BAD_KEYS = [
    "",
    "../1.jpg",
    f"{REQUEST_ID}/../../etc/passwd",
    f"../{REQUEST_ID}/1.jpg",
    "/etc/passwd",
    f"/{KEY}",
    f"{REQUEST_ID}//1.jpg",
    f"{REQUEST_ID}\\1.jpg",
    f"{REQUEST_ID}/1.jpg/..",
    f"{REQUEST_ID}/1.png",
    f"{REQUEST_ID}/1-jpeg-q50.png",
    f"{REQUEST_ID}/1-gif-q50.gif",
    f"{REQUEST_ID}/1-webp-q50-max.webp",
    f"{REQUEST_ID}/1-webp-q50/../x.webp",
    f"{REQUEST_ID}/-1.jpg",
    f"{REQUEST_ID.upper()}/1.jpg",
    f"{KEY}\n",
    "not-a-uuid/1.jpg",
]


@pytest.fixture
def photo(photos: list[Path]) -> bytes:
    return photos[0].read_bytes()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, held, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@dataclass
class Backend:
    storage: Storage
    read: Callable[[str], bytes]  # what is stored under a key, read behind the storage's back
    listing: Callable[[], list[str]]  # everything the backend holds (files or objects)
    broken: Callable[[], Storage]  # the same backend pointed at something unusable


def _local_backend(tmp_path: Path) -> Backend:
    root = tmp_path / "images"
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")  # a root below a regular file can never be created
    storage = LocalStorage(root, public_url=PUBLIC_URL)
    return Backend(
        storage=storage,
        read=lambda key: storage.path_for(key).read_bytes(),
        listing=lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
        broken=lambda: LocalStorage(blocker / "images", public_url=PUBLIC_URL),
    )


def _s3_backend(moto_s3: MotoS3, closed_port: int) -> Backend:
    storage = S3Storage(moto_s3.bucket, endpoint_url=moto_s3.endpoint_url)
    return Backend(
        storage=storage,
        read=moto_s3.read,
        listing=moto_s3.keys,
        # One attempt: the retries are botocore's, and would only slow the test down.
        broken=lambda: S3Storage(
            moto_s3.bucket, endpoint_url=f"http://127.0.0.1:{closed_port}", max_attempts=1
        ),
    )


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, closed_port: int) -> Iterator[Backend]:
    if request.param == "local":
        made = _local_backend(tmp_path)
    else:
        made = _s3_backend(request.getfixturevalue("moto_s3"), closed_port)
    yield made
    made.storage.close()


# -- the contract, for every backend ------------------------------------------------------


def test_put_stores_the_bytes(backend: Backend, photo: bytes) -> None:
    backend.storage.put(KEY, photo)
    assert backend.read(KEY) == photo


def test_put_again_overwrites_and_never_duplicates(backend: Backend) -> None:
    backend.storage.put(KEY, b"first")
    backend.storage.put(KEY, b"second")
    assert backend.listing() == [KEY]  # and no temporary file left behind
    assert backend.read(KEY) == b"second"


def test_copy_gives_an_independent_object(backend: Backend, photo: bytes) -> None:
    copy = f"{REQUEST_ID}/99.jpg"
    backend.storage.put(KEY, photo)
    assert backend.storage.copy(KEY, copy)
    assert backend.read(copy) == photo
    assert backend.storage.copy(KEY, copy)  # again: replaces, never duplicates
    assert backend.storage.copy(copy, copy)  # onto itself: it is there
    assert backend.listing() == sorted([KEY, copy])
    backend.storage.put(KEY, b"redone")  # the source replaced: the copy keeps its bytes
    assert backend.read(copy) == photo


def test_copy_of_a_missing_object_is_false(backend: Backend) -> None:
    copy = f"{REQUEST_ID}/99.jpg"
    assert backend.storage.copy(KEY, copy) is False
    assert backend.storage.copy(KEY, KEY) is False
    assert backend.listing() == []


def test_copy_survives_deleting_the_source_locally(tmp_path: Path, photo: bytes) -> None:
    storage = LocalStorage(tmp_path, public_url=PUBLIC_URL)
    copy = f"{REQUEST_ID}/99.jpg"
    storage.put(KEY, photo)
    assert storage.copy(KEY, copy)
    assert storage.path_for(copy).stat().st_ino == storage.path_for(KEY).stat().st_ino  # a link
    storage.path_for(KEY).unlink()
    assert storage.path_for(copy).read_bytes() == photo


def test_keys_of_and_delete_remove_only_the_named_images(backend: Backend) -> None:
    other = "00000000-0000-4000-8000-000000000001/0.jpg"
    mine = [f"{REQUEST_ID}/{n}.jpg" for n in range(3)]
    for key in [*mine, other]:
        backend.storage.put(key, b"x")
    assert sorted(backend.storage.keys_of(REQUEST_ID)) == sorted(mine)
    backend.storage.delete([*mine, f"{REQUEST_ID}/99.jpg"])  # a missing key is no error
    assert backend.listing() == [other]
    assert backend.storage.keys_of(REQUEST_ID) == []
    with pytest.raises(ValueError):
        backend.storage.delete(["../escape.jpg"])


def test_url_for_is_absolute_and_names_the_key(backend: Backend) -> None:
    url = urlsplit(backend.storage.url_for(KEY))
    assert url.scheme in ("http", "https")
    assert url.netloc
    assert url.path.endswith(f"/{KEY}")


def _refuses(call: Callable[[str], object], key: str) -> bool:
    try:
        call(key)
    except ValueError:
        return True
    return False


def test_bad_keys_are_refused_before_touching_the_store(backend: Backend) -> None:
    storage = backend.storage
    assert [key for key in BAD_KEYS if not _refuses(lambda k: storage.put(k, b"x"), key)] == []
    assert [key for key in BAD_KEYS if not _refuses(storage.url_for, key)] == []
    assert backend.listing() == []


def test_delete_removes_the_object_and_a_missing_one_is_fine(
    backend: Backend, photo: bytes
) -> None:
    backend.storage.put(KEY, photo)
    assert backend.listing()
    backend.storage.delete([KEY])
    backend.storage.delete([KEY])
    assert backend.listing() == []


def test_check_passes_on_a_usable_store(backend: Backend) -> None:
    backend.storage.check()


def test_check_fails_on_an_unusable_store(backend: Backend) -> None:
    with pytest.raises(ImageError) as caught:
        backend.broken().check()
    assert caught.value.code == ErrorCode.STORAGE_ERROR


def test_store_failure_is_a_storage_error(backend: Backend) -> None:
    with pytest.raises(ImageError) as caught:
        backend.broken().put(KEY, b"x")
    assert caught.value.code == ErrorCode.STORAGE_ERROR
    assert KEY in caught.value.message


# -- keys ---------------------------------------------------------------------------------


def test_image_key_is_deterministic_and_canonical() -> None:
    options = OutputOptions(quality=50)
    key = f"{REQUEST_ID}/1234-jpeg-q50.jpg"
    assert image_key(UUID(REQUEST_ID), 1234, options) == key
    assert image_key(REQUEST_ID.upper(), 1234, options) == key
    assert validate_key(key) == key
    assert validate_key(KEY) == KEY  # outputs stored before options existed stay valid


def test_image_key_names_the_options_and_ends_in_the_format_extension() -> None:
    webp = OutputOptions(format="webp", quality=55, max_size=2048)
    avif = OutputOptions(format="avif", quality=48)
    assert image_key(REQUEST_ID, 7, webp) == f"{REQUEST_ID}/7-webp-q55-max2048.webp"
    assert image_key(REQUEST_ID, 7, avif) == f"{REQUEST_ID}/7-avif-q48.avif"
    assert content_type(image_key(REQUEST_ID, 7, webp)) == "image/webp"
    assert content_type(image_key(REQUEST_ID, 7, avif)) == "image/avif"
    assert content_type(KEY) == "image/jpeg"


# -- local --------------------------------------------------------------------------------


def test_local_url_is_served_by_the_api(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, public_url=PUBLIC_URL + "/")
    assert storage.url_for(KEY) == f"{PUBLIC_URL}/files/{KEY}"


def test_local_path_for_refuses_traversal(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, public_url=PUBLIC_URL)
    assert [key for key in BAD_KEYS if not _refuses(storage.path_for, key)] == []


def test_local_readers_never_see_a_half_written_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, public_url=PUBLIC_URL)
    versions = (b"a" * 4_000_000, b"b" * 4_000_000)
    storage.put(KEY, versions[0])
    path = storage.path_for(KEY)
    done = threading.Event()
    torn: list[int] = []

    def rewrite() -> None:
        for turn in range(30):
            storage.put(KEY, versions[turn % 2])
        done.set()

    writer = threading.Thread(target=rewrite)
    writer.start()
    while not done.is_set():
        data = path.read_bytes()
        if data not in versions:
            torn.append(len(data))
    writer.join()
    assert torn == []


# -- S3 -----------------------------------------------------------------------------------


# A writer that stops inside its write, after the temporary file exists: run as a process
# of its own, so the test can kill it there, as a crash or an OOM kill would.
STUCK_WRITER = """
import os, sys, time
from pathlib import Path
from imgbatch.storage import LocalStorage
os.fsync = lambda fd: time.sleep(3600)
LocalStorage(Path(sys.argv[1]), public_url="http://x").put(sys.argv[2], b"half a jpeg")
"""


def _stuck_writer(root: Path, key: str) -> subprocess.Popen[bytes]:
    writer = subprocess.Popen([sys.executable, "-c", STUCK_WRITER, str(root), key])
    deadline = time.monotonic() + 30
    while not list(root.glob(f"{key.split('/')[0]}/.*.{writer.pid}.*.tmp")):
        assert time.monotonic() < deadline and writer.poll() is None, "the writer never wrote"
        time.sleep(0.05)
    return writer


def test_start_up_sweeps_temporary_files_of_killed_writes_only(tmp_path: Path) -> None:
    root = tmp_path / "images"
    # Keys of every spelling: from before output options, and per options.
    webp_key = image_key(UUID(int=5), 3, OutputOptions(format="webp", quality=76, max_size=2048))
    for key in (KEY, webp_key):
        killed = _stuck_writer(root, key)
        killed.kill()
        killed.wait()
    other_key = image_key(UUID(int=7), 8, OutputOptions())
    alive = _stuck_writer(root, other_key)
    try:
        before = sorted(path.name for path in root.glob("*/.*.tmp"))
        assert len(before) == 3
        open_services(Settings(data_dir=tmp_path)).engine.dispose()  # a start-up
        left = sorted(path.name for path in root.glob("*/.*.tmp"))
        assert left == [name for name in before if f".{alive.pid}." in name]
    finally:
        alive.kill()
        alive.wait()
    assert not (root / KEY).exists() and not (root / webp_key).exists()


def test_s3_objects_carry_jpeg_type_and_long_cache(moto_s3: MotoS3, photo: bytes) -> None:
    S3Storage(moto_s3.bucket, endpoint_url=moto_s3.endpoint_url).put(KEY, photo)
    head = moto_s3.client.head_object(Bucket=moto_s3.bucket, Key=KEY)
    assert head["ContentType"] == "image/jpeg"
    assert head["CacheControl"] == CACHE_FOREVER == "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    ("output_format", "expected"), [("webp", "image/webp"), ("avif", "image/avif")]
)
def test_s3_objects_carry_their_format_type(
    moto_s3: MotoS3, output_format: str, expected: str
) -> None:
    key = image_key(REQUEST_ID, 1, OutputOptions.model_validate({"format": output_format}))
    S3Storage(moto_s3.bucket, endpoint_url=moto_s3.endpoint_url).put(key, b"x")
    head = moto_s3.client.head_object(Bucket=moto_s3.bucket, Key=key)
    assert head["ContentType"] == expected


def test_s3_presigned_url_serves_the_bytes(moto_s3: MotoS3, photo: bytes) -> None:
    storage = S3Storage(moto_s3.bucket, endpoint_url=moto_s3.endpoint_url, presign_seconds=600)
    storage.put(KEY, photo)
    url = storage.url_for(KEY)
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["600"]
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.content == photo
    assert answer.headers["content-type"] == "image/jpeg"


def test_s3_public_url_under_a_configured_base(moto_s3: MotoS3) -> None:
    storage = S3Storage(
        moto_s3.bucket,
        "shop/out",
        endpoint_url=moto_s3.endpoint_url,
        url_mode="public",
        public_base_url="https://cdn.example/",
    )
    assert storage.url_for(KEY) == f"https://cdn.example/shop/out/{KEY}"


def _public_read(bucket: str) -> str:
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_s3_public_url_defaults_to_the_endpoint_path(moto_s3: MotoS3, photo: bytes) -> None:
    storage = S3Storage(moto_s3.bucket, endpoint_url=moto_s3.endpoint_url, url_mode="public")
    storage.put(KEY, photo)
    url = storage.url_for(KEY)
    assert url == f"{moto_s3.endpoint_url}/{moto_s3.bucket}/{KEY}"
    moto_s3.client.put_bucket_policy(Bucket=moto_s3.bucket, Policy=_public_read(moto_s3.bucket))
    assert httpx.get(url).content == photo


def test_s3_public_url_on_aws_is_virtual_hosted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    # Builds a client only; no request is sent anywhere.
    storage = S3Storage("shop-images", "out", url_mode="public")
    assert storage.url_for(KEY) == f"https://shop-images.s3.eu-west-1.amazonaws.com/out/{KEY}"


def test_s3_missing_bucket_fails_check_and_put(moto_s3: MotoS3) -> None:
    storage = S3Storage("no-such-bucket", endpoint_url=moto_s3.endpoint_url)
    for attempt in (storage.check, lambda: storage.put(KEY, b"x")):
        with pytest.raises(ImageError) as caught:
            attempt()
        assert caught.value.code == ErrorCode.STORAGE_ERROR


def test_s3_unreachable_endpoint_is_a_storage_error(closed_port: int, moto_s3: MotoS3) -> None:
    storage = S3Storage("b", endpoint_url=f"http://127.0.0.1:{closed_port}", max_attempts=1)
    with pytest.raises(ImageError) as caught:
        storage.put(KEY, b"x")
    assert caught.value.code == ErrorCode.STORAGE_ERROR


def test_s3_presigning_without_credentials_is_a_storage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "BOTO_CONFIG"):
        monkeypatch.setenv(name, os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    storage = S3Storage("b", endpoint_url="http://127.0.0.1:9", max_attempts=1)
    with pytest.raises(ImageError) as caught:
        storage.url_for(KEY)
    assert caught.value.code == ErrorCode.STORAGE_ERROR


# -- choosing the backend -----------------------------------------------------------------


def test_open_storage_defaults_to_images_in_the_data_dir(tmp_path: Path) -> None:
    storage = open_storage(Settings(data_dir=tmp_path, public_url=PUBLIC_URL))
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "images").resolve()
    assert storage.url_for(KEY) == f"{PUBLIC_URL}/files/{KEY}"


def test_open_storage_file_url(tmp_path: Path) -> None:
    root = tmp_path / "out dir"
    storage = open_storage(Settings(storage_url=root.as_uri()))
    assert isinstance(storage, LocalStorage)
    assert storage.root == root


def test_open_storage_s3_url_writes_under_the_prefix(moto_s3: MotoS3) -> None:
    settings = Settings(
        storage_url=f"s3://{moto_s3.bucket}/shop/out/", s3_endpoint_url=moto_s3.endpoint_url
    )
    storage = open_storage(settings)
    assert isinstance(storage, S3Storage)
    storage.put(KEY, b"jpeg")
    assert moto_s3.keys() == [f"shop/out/{KEY}"]
    assert httpx.get(storage.url_for(KEY)).content == b"jpeg"


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "s3:///prefix-without-bucket", "file://host/abs", "file:relative"]
)
def test_open_storage_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_storage(Settings(storage_url=url))
