"""Webhook signing secrets: the one secret of a service without API keys, and one per key.

Without ``IMGBATCH_API_KEYS`` every webhook is signed with ``IMGBATCH_WEBHOOK_SECRET`` (or
the secret generated once in the data dir). With keys, a request's webhook is signed with
the secret of the key that uploaded it: ``IMGBATCH_WEBHOOK_SECRETS`` names some, and any
other key gets one generated at first use and kept in the database, so every API process
signs alike and a tenant, knowing only its own secret, cannot forge another's events.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import secrets
from pathlib import Path

from sqlalchemy import Engine
from standardwebhooks import Webhook

from imgbatch.config import Settings
from imgbatch.db.tenants import SECRET_PREFIX, owner_of, stored_secret

log = logging.getLogger(__name__)

SECRET_FILE = "webhook_secret"


class WebhookSecretInvalid(ValueError):
    """The configured or stored secret is not a ``whsec_``-prefixed base64 key."""


def webhook_secret(settings: Settings) -> str:
    """IMGBATCH_WEBHOOK_SECRET, or else the secret generated once and kept in the data dir."""
    if settings.webhook_secret:
        return _checked(settings.webhook_secret.strip(), "IMGBATCH_WEBHOOK_SECRET")
    path = settings.data_dir / SECRET_FILE
    return _checked(_stored_secret(path), str(path))


def _checked(secret: str, source: str) -> str:
    key = secret.removeprefix(SECRET_PREFIX)
    try:  # padding optional, as Standard Webhooks libraries accept it
        decoded = base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not secret.startswith(SECRET_PREFIX) or len(decoded) < 16:
        raise WebhookSecretInvalid(
            f"{source}: a webhook secret is 'whsec_' followed by base64 of at least 16 "
            "random bytes; see docs/webhooks.md"
        )
    return secret


def _stored_secret(path: Path) -> str:
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    # Written whole under a temporary name, then linked into place: a process starting at
    # the same moment either wins the link or reads the complete winner.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(secret + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        temporary.unlink(missing_ok=True)
    log.info("generated a webhook signing secret in %s", path)
    return secret


def key_secret(engine: Engine, settings: Settings, owner: str) -> str:
    """The secret of one API key (by owner): named in IMGBATCH_WEBHOOK_SECRETS, or else
    generated once and kept in the database."""
    for key, secret in settings.webhook_secret_map.items():
        if owner_of(key) == owner:
            return _checked(secret, "IMGBATCH_WEBHOOK_SECRETS")
    return stored_secret(engine, owner=owner)


class SigningKeys:
    """The signer of each owner's webhooks (``None``: requests made without API keys)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        # Bad secrets stop the start, loudly.
        self.default = webhook_secret(settings)
        for secret in settings.webhook_secret_map.values():
            _checked(secret, "IMGBATCH_WEBHOOK_SECRETS")
        self._signers: dict[str | None, Webhook] = {}

    def secret_for(self, owner: str | None) -> str:
        if owner is None:
            return self.default
        return key_secret(self.engine, self.settings, owner)

    def signer_for(self, owner: str | None) -> Webhook:
        signer = self._signers.get(owner)
        if signer is None:
            signer = self._signers[owner] = Webhook(self.secret_for(owner))
        return signer
