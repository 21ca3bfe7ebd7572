"""The finished-request webhook, end to end: real receivers on loopback, real signatures.

Every receiver is an Origin on 127.0.0.1 that records what each POST carried. Signatures
are checked twice: by hand (HMAC-SHA256 as Standard Webhooks defines it) and with the
``standardwebhooks`` package a receiver would use.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import os
import secrets
import stat
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from standardwebhooks import Webhook, WebhookVerificationError

from imgbatch.api import create_app
from imgbatch.config import Settings
from imgbatch.csvfile import CsvLimits, open_csv
from imgbatch.db.engine import make_engine, utcnow
from imgbatch.db.ingest import create_request
from imgbatch.db.models import WebhookStatus
from imgbatch.db.reads import get_request, webhook_attempts
from imgbatch.db.webhooks import DueWebhook, claim_due, record_attempt
from imgbatch.db.work import cancel_request
from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.fetch.transport import safe_async_client
from imgbatch.webhooks import WebhookSecretInvalid, deliver_due, webhook_secret
from tests.helpers import IMGBATCH, csv_bytes, wait_until
from tests.origin import Handler, Origin, answer, hang_up, in_turn, redirect, stall

PAYLOAD_KEYS = {
    "type",
    "request_id",
    "status",
    "total_images",
    "processed_images",
    "failed_images",
    "output_csv_url",
    "finished_at",
}
LIMITS = CsvLimits(max_rows=100, max_urls_per_row=10, max_url_length=2048, max_errors=10)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Call:
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


class Receiver:
    """A webhook endpoint on an Origin: records every POST, then answers the next of
    ``answers`` (the last one repeats)."""

    def __init__(self, origin: Origin, *answers: Handler, path: str = "/hook") -> None:
        self.origin = origin
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._answer = in_turn(*answers)
        self.url = origin.route(path, self._handle)

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        body = req.rfile.read(int(req.headers.get("Content-Length", "0")))
        with self._lock:
            self.calls.append(Call({k.lower(): v for k, v in req.headers.items()}, body))
        self._answer(req)

    def wait_calls(self, count: int, timeout: float = 15) -> list[Call]:
        wait_until(lambda: len(self.calls) >= count, timeout=timeout, interval=0.05)
        return self.calls


def verify_by_hand(secret: str, call: Call) -> None:
    """The receiver's check, written from the Standard Webhooks text, no library."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{call.headers['webhook-id']}.{call.headers['webhook-timestamp']}.".encode()
    expected = hmac.new(key, signed + call.body, hashlib.sha256).digest()
    offered = [
        base64.b64decode(sig.split(",", 1)[1])
        for sig in call.headers["webhook-signature"].split(" ")
        if sig.startswith("v1,")
    ]
    assert any(hmac.compare_digest(expected, sig) for sig in offered), "signature mismatch"


@pytest.fixture
def hooks() -> Iterator[Origin]:
    """A second origin for webhook receivers, apart from the one serving photos."""
    server = Origin().start()
    yield server
    server.stop()


Service = Callable[..., Any]


@pytest.fixture
def service(tmp_path: Path, photo_origin: Origin, hooks: Origin) -> Service:
    """Start the app on one data dir; photos and receivers allowed unless overridden."""

    @contextmanager
    def start(*, work: bool = True, **overrides: Any) -> Iterator[TestClient]:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "allow_private_networks": f"127.0.0.1:{photo_origin.port},127.0.0.1:{hooks.port}",
            "workers": 1,
            "fetch_retries": 0,
            "webhook_retry_delays": "0.2,0.2",
        }
        values.update(overrides)
        with TestClient(create_app(Settings(**values), work=work)) as client:
            yield client

    return start


def upload(client: TestClient, urls: Sequence[str], webhook_url: str | None) -> str:
    data = {"webhook_url": webhook_url} if webhook_url else {}
    body = csv_bytes([(i + 1, f"SKU{i + 1}", [url]) for i, url in enumerate(urls)])
    response = client.post(
        "/api/v1/requests", files={"file": ("p.csv", body, "text/csv")}, data=data
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def webhook_of(client: TestClient, request_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/requests/{request_id}/webhook")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_webhook(client: TestClient, request_id: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = webhook_of(client, request_id)
        return body if body["webhook_status"] == status else None

    result: dict[str, Any] = wait_until(reached, timeout=20, interval=0.05)
    return result


def photo(origin: Origin, photos: list[Path], index: int = 0) -> str:
    return origin.url(f"/photos/{photos[index].name}")


def test_delivery_is_signed_and_carries_the_final_status(
    service: Service, photo_origin: Origin, photos: list[Path], hooks: Origin
) -> None:
    secret = new_secret()
    receiver = Receiver(hooks, answer(204))
    urls = [photo(photo_origin, photos), photo_origin.url("/missing.jpg")]
    with service(webhook_secret=secret) as client:
        request_id = upload(client, urls, receiver.url)
        webhook = wait_webhook(client, request_id, "delivered")
        status = client.get(f"/api/v1/requests/{request_id}").json()
        (call,) = receiver.calls

        assert status["webhook_status"] == "delivered"
        assert call.headers["content-type"] == "application/json"
        assert call.headers["webhook-id"] == webhook["webhook_id"]
        assert webhook["webhook_id"].startswith("msg_")
        verify_by_hand(secret, call)
        assert Webhook(secret).verify(call.body, call.headers) == call.payload
        tampered = call.body.replace(b"completed_with_errors", b"completed")
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(tampered, call.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret()).verify(call.body, call.headers)

        payload = call.payload
        assert set(payload) == PAYLOAD_KEYS
        assert payload["type"] == "request.finished"
        assert payload["request_id"] == request_id
        assert payload["status"] == status["status"] == "completed_with_errors"
        assert (payload["total_images"], payload["processed_images"]) == (2, 1)
        assert payload["failed_images"] == 1
        assert payload["output_csv_url"] == status["output_csv_url"]
        finished = datetime.fromisoformat(payload["finished_at"])
        assert finished.utcoffset() == timedelta(0)
        assert finished.replace(tzinfo=None) == datetime.fromisoformat(
            status["finished_at"]
        ).replace(tzinfo=None)

        (attempt,) = webhook["attempts"]
        assert attempt["status_code"] == 204 and attempt["error"] is None
        assert attempt["duration_ms"] >= 0 and webhook["next_attempt_at"] is None
        assert webhook["webhook_url"] == receiver.url
        # Delivered once: later scheduler rounds leave it alone.
        client.get("/healthz")
        threading.Event().wait(1.0)
        assert len(receiver.calls) == 1


def test_a_failed_answer_is_retried_with_the_same_id(
    service: Service, photo_origin: Origin, photos: list[Path], hooks: Origin
) -> None:
    secret = new_secret()
    receiver = Receiver(hooks, answer(500, b"receiver  busy\n"), answer(200))
    with service(webhook_secret=secret) as client:
        request_id = upload(client, [photo(photo_origin, photos)], receiver.url)
        webhook = wait_webhook(client, request_id, "delivered")
        first, second = receiver.calls
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == webhook["webhook_id"]
        assert first.body == second.body
        assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])
        for call in (first, second):
            verify_by_hand(secret, call)
            Webhook(secret).verify(call.body, call.headers)
        failed, delivered = webhook["attempts"]
        assert failed["status_code"] == 500
        assert failed["error"] == "the receiver answered 500 Internal Server Error: receiver busy"
        assert delivered["status_code"] == 200 and delivered["error"] is None
        assert failed["attempted_at"] <= delivered["attempted_at"]


def endless_error(origin: Origin) -> Handler:
    """A 500 whose body never ends (no length) until the client leaves."""

    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(500)
        req.send_header("Connection", "close")
        req.end_headers()
        req.close_connection = True
        while not origin.stopping.is_set():
            req.wfile.write(b"x" * 65536)

    return handle


def silent(origin: Origin) -> Handler:
    """Never answers (until the origin stops)."""

    def handle(req: BaseHTTPRequestHandler) -> None:
        origin.stopping.wait(10)

    return handle


def test_a_receiver_failing_every_attempt_ends_failed(
    service: Service, photo_origin: Origin, photos: list[Path], hooks: Origin
) -> None:
    elsewhere = hooks.route("/elsewhere", answer(200))
    receiver = Receiver(
        hooks, endless_error(hooks), silent(hooks), redirect(elsewhere, 307), hang_up
    )
    with service(webhook_retry_delays="0.2,0.2,0.2", webhook_timeout=0.5) as client:
        request_id = upload(client, [photo(photo_origin, photos)], receiver.url)
        webhook = wait_webhook(client, request_id, "failed")
        assert client.get(f"/api/v1/requests/{request_id}").json()["webhook_status"] == "failed"
        assert len(receiver.calls) == 4  # the first attempt and one per delay
        assert len({call.headers["webhook-id"] for call in receiver.calls}) == 1
        assert hooks.hits.get("/elsewhere") is None  # redirects are not followed
        endless, timed_out, redirected, hung_up = webhook["attempts"]
        # Only a few KiB of an answer are read: an endless error body is no timeout.
        assert endless["status_code"] == 500 and endless["duration_ms"] < 500
        assert endless["error"] == "the receiver answered 500 Internal Server Error: " + "x" * 200
        assert timed_out["status_code"] is None
        assert timed_out["error"] == "timeout: the receiver did not answer within 0.5 s"
        assert redirected["status_code"] == 307
        assert "redirects are not followed" in redirected["error"]
        assert hung_up["status_code"] is None
        assert hung_up["error"].startswith("connection_error: ")
        assert webhook["next_attempt_at"] is None
        threading.Event().wait(0.8)
        assert len(receiver.calls) == 4


def test_a_restart_between_attempts_still_delivers(
    service: Service, photo_origin: Origin, photos: list[Path], hooks: Origin, tmp_path: Path
) -> None:
    receiver = Receiver(hooks, answer(503), answer(200))
    with service(webhook_retry_delays="3") as client:
        request_id = upload(client, [photo(photo_origin, photos)], receiver.url)
        wait_until(lambda: webhook_of(client, request_id)["attempts"], timeout=20, interval=0.05)
        pending = webhook_of(client, request_id)
        assert pending["webhook_status"] == "pending" and pending["next_attempt_at"]
    assert len(receiver.calls) == 1  # stopped before the second attempt was due
    with service(webhook_retry_delays="3") as client:
        webhook = wait_webhook(client, request_id, "delivered")
    first, second = receiver.calls
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == webhook["webhook_id"]
    assert [a["status_code"] for a in webhook["attempts"]] == [503, 200]

    # No IMGBATCH_WEBHOOK_SECRET: one was generated, kept private, and used by both lives.
    secret_file = tmp_path / "data" / "webhook_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    for call in (first, second):
        verify_by_hand(secret, call)
    printed = subprocess.run(
        [IMGBATCH, "webhook-secret"],
        env={**os.environ, "IMGBATCH_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == secret


def test_a_forbidden_webhook_address_is_never_called(
    service: Service, photo_origin: Origin, photos: list[Path], hooks: Origin
) -> None:
    trap = Receiver(hooks, answer(200))
    # Accepted while the receiver's port was allowed, delivered after it no longer is.
    with service(work=False) as client:
        request_id = upload(client, [photo(photo_origin, photos)], trap.url)
    with service(allow_private_networks=f"127.0.0.1:{photo_origin.port}") as client:
        webhook = wait_webhook(client, request_id, "failed")
        assert client.get(f"/api/v1/requests/{request_id}").json()["status"] == "completed"
    assert hooks.hits == {}
    assert len(webhook["attempts"]) == 3
    for attempt in webhook["attempts"]:
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("blocked_address: ")
        assert "127.0.0.1" in attempt["error"]


@pytest.mark.parametrize("allowed", [False, True])
def test_the_policy_applies_to_the_address_a_name_resolves_to(
    tmp_path: Path, hooks: Origin, allowed: bool
) -> None:
    """A host name passes the upload check; the connection is refused where it resolves."""
    receiver = Receiver(hooks, answer(200))
    url = receiver.url.replace("127.0.0.1", "hooks.test")
    engine = migrated_engine(tmp_path)
    request_id = stored_request(engine, webhook_url=url)
    assert cancel_request(engine, request_id=request_id)
    settings = Settings(data_dir=tmp_path, webhook_secret=new_secret(), webhook_retry_delays="")
    policy = AddressPolicy([f"127.0.0.1:{hooks.port}"] if allowed else [])
    policy.check_url(url)  # what the upload checks: a name, so it passes

    async def to_loopback(host: str, port: int) -> list[str]:
        assert host == "hooks.test"
        return ["127.0.0.1"]

    async def deliver() -> int:
        async with safe_async_client(policy, timeout=2, resolver=to_loopback) as client:
            signer = Webhook(webhook_secret(settings))
            return await deliver_due(engine, settings, client, signer=signer, policy=policy)

    assert asyncio.run(deliver()) == 1
    (attempt,) = webhook_attempts(engine, request_id=request_id)
    request = get_request(engine, request_id=request_id)
    assert request is not None
    if allowed:  # the resolver really leads to the receiver
        assert len(receiver.calls) == 1
        assert receiver.calls[0].headers["host"] == f"hooks.test:{hooks.port}"
        assert request.webhook_status == "delivered"
    else:
        assert hooks.hits == {}
        assert attempt.error is not None
        assert attempt.error.startswith("blocked_address: ")
        assert "hooks.test (127.0.0.1)" in attempt.error
        assert request.webhook_status == "failed"  # no retry delays: one attempt only
    engine.dispose()


def test_cancel_sends_the_webhook_with_status_cancelled(
    service: Service, photo_origin: Origin, hooks: Origin
) -> None:
    receiver = Receiver(hooks, answer(200))
    stalled = photo_origin.route("/stalled.jpg", stall(photo_origin, b"\xff\xd8", 10_000))
    with service(fetch_timeout=1) as client:
        request_id = upload(client, [stalled], receiver.url)
        wait_until(lambda: photo_origin.hits.get("/stalled.jpg"), timeout=10, interval=0.05)
        assert client.post(f"/api/v1/requests/{request_id}/cancel").status_code == 200
        wait_webhook(client, request_id, "delivered")
        assert client.get(f"/api/v1/requests/{request_id}").json()["webhook_status"] == "delivered"
    (call,) = receiver.calls
    assert call.payload["status"] == "cancelled"
    assert call.payload["request_id"] == request_id
    assert (call.payload["total_images"], call.payload["processed_images"]) == (1, 0)


def test_webhook_endpoint_without_a_webhook_and_for_an_unknown_request(
    service: Service, photo_origin: Origin, photos: list[Path]
) -> None:
    with service(work=False) as client:
        request_id = upload(client, [photo(photo_origin, photos)], None)
        assert webhook_of(client, request_id) == {
            "webhook_url": None,
            "webhook_status": None,
            "webhook_id": None,
            "attempts": [],
            "next_attempt_at": None,
        }
        assert client.get(f"/api/v1/requests/{uuid.uuid4()}/webhook").status_code == 404


def test_a_malformed_secret_stops_the_start(tmp_path: Path) -> None:
    for bad in ("hunter2", "whsec_", "whsec_not*base64", "c2VjcmV0c2VjcmV0c2VjcmV0"):
        with pytest.raises(WebhookSecretInvalid):
            webhook_secret(Settings(data_dir=tmp_path, webhook_secret=bad))
    (tmp_path / "webhook_secret").write_text("garbage\n")
    with pytest.raises(WebhookSecretInvalid), TestClient(create_app(Settings(data_dir=tmp_path))):
        pass


# --- claims, on SQLite and PostgreSQL -------------------------------------------------------


def migrated_engine(tmp_path: Path) -> Engine:
    from imgbatch.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'imgbatch.db'}"
    upgrade(url)
    return make_engine(url)


def stored_request(engine: Engine, *, webhook_url: str | None) -> str:
    request_id = str(uuid.uuid4())
    body = csv_bytes([(1, "SKU1", ["https://img.example/a.jpg"])])
    create_request(
        engine,
        request_id=request_id,
        reader=open_csv(io.BytesIO(body), LIMITS),
        webhook_url=webhook_url,
    )
    return request_id


def test_a_due_delivery_is_claimed_by_one_sender_only(engine: Engine) -> None:
    request_id = stored_request(engine, webhook_url="https://hooks.example/x")
    quiet = stored_request(engine, webhook_url=None)
    assert cancel_request(engine, request_id=request_id)
    assert cancel_request(engine, request_id=quiet)

    start = threading.Barrier(8)
    claims: list[list[DueWebhook]] = []

    def claim() -> None:
        start.wait()
        got = claim_due(engine, lease_seconds=60, limit=10)
        claims.append(got)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [delivery for batch in claims for delivery in batch]
    assert [d.request_id for d in claimed] == [request_id]  # once, and never `quiet`
    (first,) = claimed
    assert first.attempt == 1 and first.status == "cancelled"
    assert first.webhook_id.startswith("msg_")

    assert claim_due(engine, lease_seconds=60, limit=10) == []  # leased
    later = utcnow() + timedelta(seconds=61)
    (again,) = claim_due(engine, lease_seconds=60, limit=10, now=later)  # the lease ran out
    assert again.attempt == 2 and again.webhook_id == first.webhook_id

    # The sender whose lease ran out may log its attempt but no longer moves the delivery.
    def delivered(delivery: DueWebhook) -> bool:
        return record_attempt(
            engine,
            delivery=delivery,
            attempted_at=utcnow(),
            duration_ms=5,
            status_code=200,
            error=None,
            outcome=WebhookStatus.DELIVERED,
        )

    assert not delivered(first)
    assert delivered(again)
    request = get_request(engine, request_id=request_id)
    assert request is not None
    assert (request.webhook_status, request.webhook_next_at) == ("delivered", None)
    assert len(webhook_attempts(engine, request_id=request_id)) == 2
    assert claim_due(engine, lease_seconds=60, limit=10, now=later + timedelta(hours=1)) == []
