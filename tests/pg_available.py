"""Exit 0 when the test PostgreSQL answers (used by `make test`)."""

import os
import sys

import psycopg

url = os.environ.get("POLLCHECK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
url = url.replace("postgresql+psycopg://", "postgresql://")
try:
    psycopg.connect(url, connect_timeout=3).close()
except psycopg.Error:
    sys.exit(1)
