"""Fixed-window request counters per credential, shared by every API process."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class RateLimitWindow(SQLModel, table=True):
    __tablename__ = "rate_limit_window"

    credential_id: uuid.UUID = Field(primary_key=True)
    window: int = Field(sa_type=BigInteger, primary_key=True, description="Unix time // width")
    hits: int = 0
