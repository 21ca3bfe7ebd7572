"""The HTTP API (FastAPI): thin handlers over the database queries and the storage."""

from imgbatch.api.app import create_app

__all__ = ["create_app"]
