# One image for every role: the compose file runs it as `imgbatch db upgrade`,
# `imgbatch serve --host 0.0.0.0` and `imgbatch worker` (the same commands the tests run).
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependency layer first, pinned by the lock file: it is built from the metadata alone (an
# empty package stands in for the code), so a code change reuses it and reinstalls nothing.
COPY pyproject.toml requirements.lock README.md ./
RUN mkdir imgbatch && touch imgbatch/__init__.py \
    && pip install --constraint requirements.lock . \
    && pip uninstall --yes imgbatch && rm -rf imgbatch build
# Then the code, without touching the dependencies.
COPY imgbatch ./imgbatch
RUN pip install --no-deps --constraint requirements.lock .

# Never run as root (Celery refuses to be comfortable with it, and rightly).
RUN useradd --system --uid 10001 --home-dir /data imgbatch \
    && mkdir -p /data && chown imgbatch /data
USER imgbatch
ENV IMGBATCH_DATA_DIR=/data

EXPOSE 8000
CMD ["imgbatch", "serve", "--host", "0.0.0.0"]
