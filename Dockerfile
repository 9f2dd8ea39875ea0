# Pollcheck API image: the pinned dependencies, the code, and `pollcheck serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.lock pyproject.toml README.md ./
RUN pip install --require-hashes -r requirements.lock
COPY alembic.ini ./
COPY api ./api
COPY models ./models
COPY migrations ./migrations
COPY web ./web
RUN pip install --no-deps -e . && useradd --system --uid 10001 pollcheck \
    && mkdir -p /app/var && chown pollcheck /app/var
USER pollcheck

ENV POLLCHECK_HOST=0.0.0.0 POLLCHECK_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["pollcheck", "serve"]
