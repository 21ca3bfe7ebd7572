"""Two API keys on one service: each has its own webhook secret, idempotency keys and
limits, and neither sees the other's requests."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.helpers import csv_bytes
from tests.modes import Embedded, Mode
from tests.origin import Origin, answer
from tests.tenants import ALPHA, BETA, Start, photo_csv, tenants_fixture  # noqa: F401
from tests.test_webhooks import Receiver, verify_by_hand


@pytest.fixture(name="mode")
def embedded_mode() -> Mode:
    """These rules live in the API process: the embedded mode shows them (the two-mode
    tests are in test_deletion.py)."""
    return Embedded()


BODY = csv_bytes([(1, "SKU1", ["https://img.example/a.jpg", "https://img.example/b.jpg"])])
OTHER_BODY = csv_bytes([(1, "SKU2", ["https://img.example/c.jpg"])])


def a_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def test_each_key_signs_its_own_webhooks(
    tenants: Start, photo_origin: Origin, photos: list[Path]
) -> None:
    receiver = Receiver(photo_origin, answer(204))
    beta_secret = a_secret()
    with tenants(webhook_secrets=f"{BETA}:{beta_secret}") as (alpha, beta):
        alpha_secret = alpha.get("/api/v1/webhook-secret").json()["secret"]
        assert alpha_secret.startswith("whsec_") and alpha_secret != beta_secret
        assert alpha.get("/api/v1/webhook-secret").json()["secret"] == alpha_secret  # kept
        assert beta.get("/api/v1/webhook-secret").json()["secret"] == beta_secret  # configured
        assert alpha.client.get("/api/v1/webhook-secret").status_code == 401

        mine = alpha.upload(photo_csv(photo_origin, photos, 1), webhook_url=receiver.url)
        theirs = beta.upload(photo_csv(photo_origin, photos, 1), webhook_url=receiver.url)
        calls = receiver.wait_calls(2)
        by_request = {call.payload["request_id"]: call for call in calls}
        alpha_call = by_request[mine.json()["request_id"]]
        beta_call = by_request[theirs.json()["request_id"]]
        verify_by_hand(alpha_secret, alpha_call)
        verify_by_hand(beta_secret, beta_call)
        for secret, call in ((alpha_secret, beta_call), (beta_secret, alpha_call)):
            with pytest.raises(WebhookVerificationError):
                Webhook(secret).verify(call.body, call.headers)
    # The generated secret outlives a restart: it is kept with the data.
    with tenants() as (alpha, _):
        assert alpha.get("/api/v1/webhook-secret").json()["secret"] == alpha_secret


def test_without_keys_there_is_one_secret(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from imgbatch.api import create_app
    from imgbatch.config import Settings

    with TestClient(create_app(Settings(data_dir=tmp_path), work=False)) as client:
        assert client.get("/api/v1/webhook-secret").status_code == 404


def test_keys_cannot_reach_each_others_requests(tenants: Start) -> None:
    with tenants(work=False) as (alpha, beta):
        request_id = alpha.upload(BODY).json()["request_id"]
        base = f"/api/v1/requests/{request_id}"
        for path in ("", "/products", "/output.csv", "/webhook"):
            assert beta.get(base + path).status_code == 404
            assert beta.head(base + path).status_code == 404
        assert beta.delete(base).status_code == 404
        assert beta.client.post(f"{base}/cancel", headers=beta.headers).status_code == 404
        assert alpha.get(base).status_code == 200


def test_idempotency_key_answers_the_earlier_request(tenants: Start) -> None:
    with tenants(work=False) as (alpha, beta):
        key = {"Idempotency-Key": "order-42"}
        first = alpha.upload(BODY, headers=key)
        assert first.status_code == 202
        again = alpha.upload(BODY, headers=key)
        assert again.status_code == 200
        assert again.json()["request_id"] == first.json()["request_id"]
        assert again.headers["location"] == first.headers["location"]
        assert alpha.get("/api/v1/requests").json()["total"] == 1

        other_file = alpha.upload(OTHER_BODY, headers=key)
        assert other_file.status_code == 409
        assert "different file" in other_file.json()["detail"]
        other_options = alpha.upload(BODY, headers=key, webhook_url="https://hooks.example/x")
        assert other_options.status_code == 409

        # Keys are per API key: the same header value from another key is a new upload.
        theirs = beta.upload(BODY, headers=key)
        assert theirs.status_code == 202
        assert theirs.json()["request_id"] != first.json()["request_id"]

        # A rejected upload does not use the key up.
        bad = alpha.upload(b"not,a\ncsv", headers={"Idempotency-Key": "k2"})
        assert bad.status_code in (400, 422)
        assert alpha.upload(BODY, headers={"Idempotency-Key": "k2"}).status_code == 202

        # A deleted request frees its key.
        request_id = first.json()["request_id"]
        alpha.client.post(f"/api/v1/requests/{request_id}/cancel", headers=alpha.headers)
        assert alpha.delete(f"/api/v1/requests/{request_id}").status_code == 204
        assert alpha.upload(BODY, headers=key).status_code == 202


def test_uploads_per_minute_limit_is_per_key(tenants: Start) -> None:
    with tenants(work=False, uploads_per_minute=2) as (alpha, beta):
        assert alpha.upload(BODY).status_code == 202
        assert alpha.upload(BODY).status_code == 202
        refused = alpha.upload(BODY)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "IMGBATCH_UPLOADS_PER_MINUTE" in refused.json()["detail"]
        assert beta.upload(BODY).status_code == 202  # the other key is unaffected
        assert alpha.get("/api/v1/requests").json()["total"] == 2


def test_pending_images_limit_is_per_key(tenants: Start) -> None:
    with tenants(work=False, max_pending_images=3) as (alpha, beta):
        assert alpha.upload(BODY).status_code == 202  # 2 pending
        assert alpha.upload(BODY).status_code == 202  # 4 pending: over from now on
        refused = alpha.upload(OTHER_BODY)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "IMGBATCH_MAX_PENDING_IMAGES" in refused.json()["detail"]
        assert beta.upload(BODY).status_code == 202
        # Cancelling frees the key's share.
        for item in alpha.get("/api/v1/requests").json()["items"]:
            cancel = f"/api/v1/requests/{item['request_id']}/cancel"
            alpha.client.post(cancel, headers=alpha.headers)
        assert alpha.upload(OTHER_BODY).status_code == 202
