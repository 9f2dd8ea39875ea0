"""Run Alembic from code (the CLI, `make run` and the tests all build the schema this way)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from api.db import normalise_url


def _root() -> Path:
    """The folder holding alembic.ini: the source tree, or the working folder of an install."""
    for candidate in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (candidate / "alembic.ini").exists():
            return candidate
    raise FileNotFoundError("alembic.ini not found beside the package or in the working folder")


ROOT = _root()


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    if database_url:
        cfg.attributes["database_url"] = normalise_url(database_url)
    return cfg


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
