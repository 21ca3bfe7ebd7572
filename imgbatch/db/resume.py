"""What ``imgbatch run`` needs to resume: find the unfinished request of the same command, and
pin it to the new run."""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from imgbatch.db.engine import read_tx, write_tx
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


def pin_request(engine: Engine, *, request_id: str, runner_id: str) -> None:
    """Pin a request to the runner about to work on it (a resumed or retried one): while
    that runner lives, no other one (a ``serve`` on the same data dir) claims its images."""
    with write_tx(engine) as conn:
        conn.execute(update(Request).where(Request.id == request_id).values(runner_id=runner_id))
