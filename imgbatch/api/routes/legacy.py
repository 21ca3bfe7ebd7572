"""The names the original assignment used: ``POST /upload`` and ``GET /status/{id}``."""

from __future__ import annotations

from fastapi import APIRouter

from imgbatch.api.routes.requests import UPLOAD_RESPONSES, status, upload
from imgbatch.api.schemas import StatusBody

router = APIRouter(tags=["original names"])
router.post("/upload", status_code=202, response_model=StatusBody, responses=UPLOAD_RESPONSES)(
    upload
)
router.get("/status/{request_id}", response_model=StatusBody)(status)
