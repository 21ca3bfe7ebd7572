"""/api/v1/requests/{id}/webhook: where a request's webhook stands, and every attempt."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from imgbatch.api.deps import EngineDep, RequestDep
from imgbatch.db.models import WebhookStatus
from imgbatch.db.reads import webhook_attempts

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


class WebhookAttemptItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    status_code: int | None = Field(description="the receiver's HTTP status, if it answered")
    error: str | None = Field(description="why the attempt failed; null when delivered")
    duration_ms: int
    webhook_id: str = Field(description="the event's webhook-id (a retried request gets a new one)")


class WebhookBody(BaseModel):
    webhook_url: str | None
    webhook_status: str | None = Field(description="null | pending | delivered | failed")
    webhook_id: str | None = Field(description="the webhook-id header of the current event")
    attempts: list[WebhookAttemptItem] = Field(description="oldest first")
    next_attempt_at: datetime | None = Field(description="while pending: when it is tried next")


@router.get("/requests/{request_id}/webhook", response_model=WebhookBody)
def webhook(request: RequestDep, engine: EngineDep) -> WebhookBody:
    """The webhook of a request: its status, every delivery attempt, and the next one."""
    next_at = request.webhook_next_at
    if request.webhook_status != WebhookStatus.PENDING or next_at is None:
        next_at = None
    return WebhookBody(
        webhook_url=request.webhook_url,
        webhook_status=request.webhook_status,
        webhook_id=request.webhook_id,
        attempts=[
            WebhookAttemptItem.model_validate(attempt)
            for attempt in webhook_attempts(engine, request_id=request.id)
        ],
        next_attempt_at=next_at,
    )
