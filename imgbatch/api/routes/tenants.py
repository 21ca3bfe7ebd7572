"""/api/v1/webhook-secret: the calling API key's own webhook signing secret (SPEC §5)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from imgbatch.api.deps import EngineDep, OwnerDep, SettingsDep
from imgbatch.signing import key_secret

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


class WebhookSecretBody(BaseModel):
    secret: str = Field(description="whsec_…: verifies the webhooks of this key's requests")


@router.get(
    "/webhook-secret",
    response_model=WebhookSecretBody,
    responses={404: {"description": "no API keys are configured: there is one secret"}},
)
def webhook_secret(owner: OwnerDep, engine: EngineDep, settings: SettingsDep) -> WebhookSecretBody:
    """The secret that signs the webhooks of the calling key's requests."""
    if owner is None:
        raise HTTPException(
            404,
            "no API keys are configured: every webhook is signed with the one secret, "
            "IMGBATCH_WEBHOOK_SECRET (`imgbatch webhook-secret` prints it)",
        )
    return WebhookSecretBody(secret=key_secret(engine, settings, owner))
