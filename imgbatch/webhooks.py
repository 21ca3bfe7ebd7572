"""The finished-request webhook (SPEC §5): payload, Standard Webhooks signature, delivery.

When a request with a ``webhook_url`` becomes terminal, the database marks its webhook
pending with a fresh ``webhook_id`` (``db/work.py``). The scheduler calls the
:class:`WebhookSender` every round; it claims due deliveries (``db/webhooks.py``) and
POSTs each one, signed, through the SSRF-safe client: the address policy is checked again
on the addresses the name resolves to, redirects are not followed and at most a few KiB of
the answer is read. A 2xx answer delivers; anything else is recorded and retried on
``IMGBATCH_WEBHOOK_RETRY_DELAYS``, and the delivery fails after the last delay's attempt.
Every attempt reuses the same ``webhook-id`` so receivers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Literal

import httpx
from pydantic import BaseModel
from sqlalchemy import Engine
from standardwebhooks import Webhook

import imgbatch
from imgbatch.config import Settings
from imgbatch.db.counters import WEBHOOK_ATTEMPTS, add_counts, labels_text
from imgbatch.db.engine import utcnow
from imgbatch.db.models import WebhookStatus
from imgbatch.db.webhooks import DueWebhook, claim_due, record_attempt
from imgbatch.fetch.addresses import AddressPolicy
from imgbatch.fetch.failures import as_image_error
from imgbatch.fetch.transport import safe_async_client
from imgbatch.signing import SECRET_FILE, SigningKeys, WebhookSecretInvalid, webhook_secret

# The secret's API, kept importable from here.
__all__ = ["SECRET_FILE", "SigningKeys", "WebhookSecretInvalid", "webhook_secret"]

log = logging.getLogger(__name__)

USER_AGENT = f"imgbatch-webhook/{imgbatch.__version__}"
READ_LIMIT = 4096  # of a failed answer, for the error message; a 2xx body is not read
SHOWN_ANSWER = 200  # characters of a failed answer kept in the attempt's error
BATCH = 16  # deliveries claimed per round
ROUNDS = 4  # rounds in flight at once: a slow receiver holds up only its own round
LEASE_SLACK = 30.0  # seconds beyond the attempt's timeout before a claim may be taken over
SHUTDOWN_GRACE = 5.0  # seconds attempts in flight may finish when the service stops


class WebhookPayload(BaseModel):
    type: Literal["request.finished"] = "request.finished"
    request_id: str
    status: str
    total_images: int
    processed_images: int
    failed_images: int
    output_csv_url: str
    finished_at: datetime


def build_payload(delivery: DueWebhook, settings: Settings) -> bytes:
    """The JSON body, exactly as sent and signed."""
    request_id = delivery.request_id
    payload = WebhookPayload(
        request_id=request_id,
        status=delivery.status,
        total_images=delivery.total_images,
        processed_images=delivery.processed_images,
        failed_images=delivery.failed_images,
        output_csv_url=settings.output_csv_url(request_id),
        finished_at=delivery.finished_at,
    )
    return payload.model_dump_json().encode()


# --- signing ---------------------------------------------------------------------------


def signed_headers(
    signer: Webhook, *, webhook_id: str, body: bytes, at: datetime
) -> dict[str, str]:
    """Standard Webhooks headers: the signature covers "{id}.{timestamp}.{body}"."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signer.sign(webhook_id, at, body.decode()),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",  # a failed answer is quoted, so keep it plain text
    }


# --- one attempt -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status, or an error before any status arrived."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def post_signed(
    client: httpx.AsyncClient,
    policy: AddressPolicy,
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
) -> Answer:
    """POST once within ``timeout`` seconds, all of it; never raises for a network failure."""
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        policy.check_url(url)  # the quick check; the client checks resolved addresses
        async with asyncio.timeout_at(deadline):
            request = client.build_request("POST", url, content=body, headers=headers)
            response = await client.send(request, stream=True)
    except TimeoutError:
        return Answer(None, f"timeout: the receiver did not answer within {timeout:g} s")
    except Exception as exc:
        mapped = as_image_error(exc)
        if mapped is None:
            log.exception("webhook to %s failed unexpectedly", url)
            return Answer(None, f"internal_error: {type(exc).__name__}: {exc}")
        return Answer(None, f"{mapped.code}: {mapped.message}")
    try:
        if response.is_success:
            return Answer(response.status_code, None)
        return Answer(response.status_code, await _describe_failure(response, deadline))
    finally:
        await response.aclose()


async def _describe_failure(response: httpx.Response, deadline: float) -> str:
    status = response.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = response.reason_phrase
    message = f"the receiver answered {status} {phrase}".rstrip()
    if response.is_redirect:
        return f"{message}; redirects are not followed"
    text = ""
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout_at(deadline):
            text = (await _read_head(response)).decode("utf-8", "replace")
    shown = " ".join(text.split())[:SHOWN_ANSWER]
    return f"{message}: {shown}" if shown else message


async def _read_head(response: httpx.Response) -> bytes:
    head = b""
    async for chunk in response.aiter_raw():
        head += chunk
        if len(head) >= READ_LIMIT:
            break
    return head[:READ_LIMIT]


# --- delivery ----------------------------------------------------------------------------


def next_attempt(settings: Settings, attempt: int, now: datetime) -> datetime | None:
    """When attempt ``attempt + 1`` is due after attempt ``attempt`` failed; None: give up."""
    delays = settings.webhook_delays
    if attempt > len(delays):
        return None
    return now + timedelta(seconds=delays[attempt - 1])


async def deliver(
    delivery: DueWebhook,
    *,
    engine: Engine,
    settings: Settings,
    client: httpx.AsyncClient,
    signer: Webhook | SigningKeys,
    policy: AddressPolicy,
) -> WebhookStatus:
    """Make one claimed attempt, record it, and schedule the next one if it failed."""
    body = build_payload(delivery, settings)
    attempted_at = utcnow()
    if isinstance(signer, SigningKeys):  # the uploader's own secret
        signer = await asyncio.to_thread(signer.signer_for, delivery.owner)
    headers = signed_headers(signer, webhook_id=delivery.webhook_id, body=body, at=attempted_at)
    started = time.monotonic()
    answer = await post_signed(
        client,
        policy,
        url=delivery.url,
        body=body,
        headers=headers,
        timeout=settings.webhook_timeout,
    )
    duration_ms = round((time.monotonic() - started) * 1000)
    finished = utcnow()
    next_at = None if answer.delivered else next_attempt(settings, delivery.attempt, finished)
    if answer.delivered:
        outcome = WebhookStatus.DELIVERED
    else:
        outcome = WebhookStatus.PENDING if next_at else WebhookStatus.FAILED
    await asyncio.to_thread(
        record_attempt,
        engine,
        delivery=delivery,
        attempted_at=attempted_at,
        duration_ms=duration_ms,
        status_code=answer.status_code,
        error=answer.error,
        outcome=outcome,
        next_at=next_at,
    )
    await asyncio.to_thread(count_attempt, engine, outcome)
    if not answer.delivered:
        log.info(
            "webhook %s of request %s, attempt %d: %s",
            delivery.webhook_id,
            delivery.request_id,
            delivery.attempt,
            answer.error,
        )
    return outcome


def count_attempt(engine: Engine, outcome: WebhookStatus) -> None:
    """One more attempt in ``imgbatch_webhook_attempts``: delivered, retry or failed."""
    label = "retry" if outcome == WebhookStatus.PENDING else outcome.value
    try:
        add_counts(engine, {(WEBHOOK_ATTEMPTS, labels_text(outcome=label)): 1})
    except Exception:
        log.warning("could not count a webhook attempt", exc_info=True)


def lease_seconds(settings: Settings) -> float:
    """How long a claimed attempt is ours: longer than an attempt can take."""
    return settings.webhook_timeout + LEASE_SLACK


async def deliver_due(
    engine: Engine,
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    signer: Webhook | SigningKeys,
    policy: AddressPolicy | None = None,
    limit: int = BATCH,
) -> int:
    """Claim the deliveries that are due and attempt them concurrently; returns how many."""
    policy = policy or AddressPolicy.from_settings(settings)
    due = await asyncio.to_thread(
        claim_due, engine, lease_seconds=lease_seconds(settings), limit=limit
    )
    await asyncio.gather(
        *(
            deliver(
                delivery,
                engine=engine,
                settings=settings,
                client=client,
                signer=signer,
                policy=policy,
            )
            for delivery in due
        )
    )
    return len(due)


class WebhookSender:
    """The scheduler's periodic job. Each call starts a :func:`deliver_due` round in the
    background and returns at once, so a slow receiver never holds up image dispatch."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        client: httpx.AsyncClient,
        signer: Webhook | SigningKeys,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.client = client
        self.signer = signer
        self.policy = AddressPolicy.from_settings(settings)
        self._rounds: set[asyncio.Task[int]] = set()

    async def __call__(self) -> None:
        if len(self._rounds) >= ROUNDS:
            return
        task = asyncio.create_task(
            deliver_due(
                self.engine, self.settings, self.client, signer=self.signer, policy=self.policy
            )
        )
        self._rounds.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[int]) -> None:
        self._rounds.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook round failed", exc_info=task.exception())

    async def aclose(self) -> None:
        """Let attempts in flight finish briefly, then stop; a cut attempt is sent again
        (same webhook-id) once its lease ends."""
        if self._rounds:
            _, pending = await asyncio.wait(self._rounds, timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.client.aclose()


@asynccontextmanager
async def webhook_sender(engine: Engine, settings: Settings) -> AsyncIterator[WebhookSender]:
    """A sender with its own SSRF-safe client, closed on exit."""
    signer = SigningKeys(engine, settings)  # a bad secret stops the start, loudly
    client = safe_async_client(
        AddressPolicy.from_settings(settings),
        timeout=settings.webhook_timeout,
        max_connections=BATCH * ROUNDS,
    )
    sender = WebhookSender(engine, settings, client, signer)
    try:
        yield sender
    finally:
        await sender.aclose()
