"""What ``imgbatch run`` needs to resume: find the unfinished request of the same command."""

from __future__ import annotations

from sqlalchemy import Engine, select

from imgbatch.db.engine import read_tx
from imgbatch.db.models import ACTIVE_STATUSES, Request
from imgbatch.db.reads import get_request


def unfinished_request(engine: Engine, *, resume_key: str) -> Request | None:
    """The newest pending or processing request that ``imgbatch run`` started with this
    input and these options: the one the same command resumes."""
    with read_tx(engine) as conn:
        request_id = conn.execute(
            select(Request.id)
            .where(Request.resume_key == resume_key, Request.status.in_(ACTIVE_STATUSES))
            .order_by(Request.created_at.desc())
            .limit(1)
        ).scalar_one_or_none()
    return get_request(engine, request_id=request_id) if request_id else None
