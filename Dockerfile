# One image for every role: the compose file runs it as `imgbatch db upgrade`,
# `imgbatch serve --host 0.0.0.0` and `imgbatch worker` (the same commands the tests run).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, pinned by the lock file, so a code change does not reinstall them.
COPY pyproject.toml requirements.lock README.md ./
COPY imgbatch ./imgbatch
RUN pip install --constraint requirements.lock .

# Never run as root (Celery refuses to be comfortable with it, and rightly).
RUN useradd --system --uid 10001 --home-dir /data imgbatch \
    && mkdir -p /data && chown imgbatch /data
USER imgbatch
ENV IMGBATCH_DATA_DIR=/data

EXPOSE 8000
CMD ["imgbatch", "serve", "--host", "0.0.0.0"]
