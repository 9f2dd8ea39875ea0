"""Rate limits shared by every API process: request counters and work allowances."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Float
from sqlmodel import Field, SQLModel


class RateLimitWindow(SQLModel, table=True):
    __tablename__ = "rate_limit_window"

    credential_id: uuid.UUID = Field(primary_key=True)
    window: int = Field(sa_type=BigInteger, primary_key=True, description="Unix time // width")
    hits: int = 0


class RateLimitBucket(SQLModel, table=True):
    """Work allowances (checklists per observer, fresh findings computes per token, bad
    tokens per address) as GCRA buckets: one time per key, shared by every API process."""

    __tablename__ = "rate_limit_bucket"

    key: str = Field(primary_key=True, max_length=100, description="'checklists:<id>', …")
    tat: float = Field(
        sa_type=Float(precision=53),
        description="Unix time at which the bucket is empty again (theoretical arrival time)",
    )
