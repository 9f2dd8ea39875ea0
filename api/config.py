"""Settings, read from the environment with the POLLCHECK_ prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLLCHECK_", env_file=".env", extra="ignore")

    environment: str = Field("development", description="development, test or production")
    database_url: str = Field(
        "sqlite:///./pollcheck.db",
        description="SQLAlchemy URL; PostgreSQL as postgresql+psycopg://user@host/db",
    )
    read_database_url: str | None = Field(
        None,
        description="A streaming replica for the dashboards' reads (findings views, exports, "
        "the OData feed); intake, review, the fold and the views' shared cache stay on "
        "database_url. Unset: the dashboards read the primary",
    )
    direct_database_url: str | None = Field(
        None,
        description="PostgreSQL itself, when database_url goes through PgBouncer in "
        "transaction mode: the live event streams' LISTEN connection needs a session of its "
        "own. Unset: database_url",
    )
    db_pgbouncer: bool = Field(
        False,
        description="database_url (and read_database_url) go through PgBouncer in transaction "
        "mode: no prepared statements (PgBouncer before 1.21 cannot keep them across "
        "transactions) and no startup options (set statement_timeout and jit on the role)",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    db_pool_size: int = Field(
        20,
        description="Database connections each API process keeps open for requests; also how "
        "many requests a process works on at once (the rest wait their turn). Each process "
        "keeps as many again for rate-limit counters, last-used times and the findings "
        "views' cache, and "
        "dashboard_threads for dashboards (PostgreSQL): keep the sum over all processes "
        "under PostgreSQL's max_connections.",
    )
    db_max_overflow: int = Field(
        5, description="Extra connections for bursts; opened and closed again, so kept few"
    )
    db_pool_timeout_s: float = Field(
        2.0,
        description="How long a request waits for a pooled connection before it gets 503 with "
        "Retry-After (the pool is exhausted: the process is overloaded)",
    )
    db_statement_timeout_ms: int = 30_000
    db_fold_statement_timeout_ms: int = Field(
        600_000,
        description="The findings fold's own statement timeout (PostgreSQL): a fold that "
        "has fallen far behind folds thousands of checklists a statement, longer than a "
        "request may take, and a fold cancelled by the requests' timeout would start over",
    )
    intake_at_once: int = Field(
        0,
        ge=0,
        description="Observers' submissions (checklists, batches, ODK Collect's forms) a process "
        "stores at once; the rest wait their turn (0: as many as it has request connections). "
        "Where one machine carries the API and PostgreSQL, a few leave the findings fold more "
        "of the database at peak: the findings keep closer to the checklists, for less intake",
    )
    intake_lag_target_s: float = Field(
        0.0,
        ge=0,
        description="How far behind the checklists the findings may fall before each process "
        "stores fewer observers' submissions at once, down to one, giving the findings fold "
        "more of the database; more again as it catches up, and all of them whenever a "
        "submission has waited its turn for a second (0: off; the bound, if any, is "
        "intake_at_once). On PostgreSQL, with new checklists stored together "
        "(intake_group), single checklists take no turn then: each process starts those "
        "statements up to a quarter of a second apart instead, so that more go in each",
    )
    intake_group: int = Field(
        64,
        ge=1,
        description="Observers' new checklists one statement may store together (PostgreSQL): "
        "those a process receives while its statement is in flight go in the next, for about "
        "half the database's work each, and fewer sessions beside the findings fold "
        "(1: each checklist its own statement)",
    )
    intake_group_writers: int = Field(
        1,
        ge=1,
        description="Such statements a process has in flight at once (intake_group)",
    )
    dashboard_threads: int = Field(
        4,
        description="Findings and statement requests a process works on at once, on threads "
        "and (PostgreSQL) database connections of their own: dashboards never take the "
        "intake's; the rest wait their turn",
    )
    findings_computes_at_once: int = Field(
        2,
        description="Findings views of one mission a process computes afresh at once; others "
        "wait up to findings_compute_wait_s for a slot or the same result, then get 503",
    )
    findings_compute_wait_s: float = Field(
        2.0, description="How long a findings request waits for a compute slot (503 after)"
    )
    max_body_bytes: int = Field(1_000_000, description="Largest accepted request body (413 above)")
    max_header_bytes: int = Field(
        16_384,
        ge=1024,
        description="Largest request line and headers `pollcheck serve` reads (431 above)",
    )
    max_batch_items: int = 200
    clock_skew_flag_s: int = Field(
        300, description="Flag a checklist whose device clock is off by more"
    )
    future_tolerance_s: int = Field(120, description="How far in the future an observation may be")
    token_touch_interval_s: int = Field(
        60, description="How often a credential's last-used time is written"
    )
    findings_max_lag_s: float = Field(
        2.0, description="A findings read folds pending changes itself when they are older"
    )
    findings_fold_interval_s: float = Field(
        1.0, description="How often each API process folds new changes into findings (0: never)"
    )
    findings_vacuum_interval_s: float = Field(
        5.0,
        description="How often the folding process vacuums the findings tallies while they "
        "change (PostgreSQL; 0: leave it to autovacuum)",
    )
    findings_fold_elsewhere: bool = Field(
        False,
        description="API processes never fold: a `pollcheck fold` process does it (so that the "
        "fold can have a core or a machine of its own)",
    )
    findings_cache_s: float = Field(
        0.1,
        description="How long a computed findings view may be reused while data arrives "
        "(0: never, which also turns off findings_cache_cost_factor); whatever it is, a view "
        "is computed at most once for each data version the fold makes",
    )
    findings_cache_cost_factor: float = Field(
        10.0,
        description="While data arrives, a view is also reused for this many times as long as "
        "it took to compute, up to a minute: a view that took 2 s is computed again at most "
        "every 20 s, so that no slow view takes more than a tenth of the database's time",
    )
    rate_limit_per_minute: int = Field(
        600, description="Requests one token may make per minute (429 above); 0 turns it off"
    )
    odata_page_size: int = Field(
        1000, ge=1, le=100_000, description="Most rows of one OData page (then @odata.nextLink)"
    )
    limit_checklists_per_minute: float = Field(
        10,
        description="Checklists one observer may send per minute, sustained (a batch of 200 "
        "counts 200); a mission's settings.limits may change it; 0 turns it off",
    )
    limit_checklists_burst: int = Field(
        400, description="Checklists an observer may send at once (a phone's offline queue)"
    )
    limit_computes_per_minute: float = Field(
        30,
        description="Findings views nobody has asked for yet (a new filter or time window) "
        "one token may have computed per minute; a mission's settings.limits may change it; 0 "
        "turns it off",
    )
    limit_computes_burst: int = Field(20, description="Fresh findings computes at once")
    limit_failed_auth_per_minute: float = Field(
        60,
        description="Requests with a missing, unknown or revoked token one client address may "
        "make per minute (429 above, for that address's unknown tokens); 0 turns it off",
    )
    limit_failed_auth_burst: int = Field(
        120, description="Requests with a bad token one address may make at once"
    )
    events_max_streams: int = Field(
        1000,
        description="Live event streams one API process holds at most (503 with Retry-After "
        "past it); each costs a socket and some kilobytes",
    )
    events_stream_max_s: float = Field(
        3600.0,
        description="A live event stream ends after this long and the client reconnects with "
        "Last-Event-ID, which spreads consoles over the processes again after a restart (0: "
        "end each stream once it has caught up, for tests that read a stream to its end)",
    )
    events_keepalive_s: float = Field(
        15.0, description="An idle event stream sends a `: keepalive` comment this often"
    )
    events_token_check_s: float = Field(
        15.0, description="How often open event streams check that their tokens still stand"
    )
    attachments_dir: Path = Path("./var/attachments")
    attachment_max_bytes: int = Field(
        20_000_000, description="Largest file a checklist may declare (a phone photo or a PDF)"
    )
    attachments_per_checklist: int = Field(10, description="Most files one checklist may declare")
    openrosa_max_submission_bytes: int = Field(
        10_000_000,
        ge=100_000,
        description="Largest request ODK Collect or Enketo may send (the form and its photos, "
        "413 above); Collect splits a bigger submission into requests this size",
    )
    map_tile_url: str = Field(
        "",
        description="Map tiles for the console, as a Leaflet URL template "
        "(https://tiles.example.org/{z}/{x}/{y}.png, on the mission's LAN if it has no "
        "internet); empty: the map draws the stations on a plain background",
    )
    map_tile_attribution: str = Field(
        "", description="The tiles' attribution line, shown on the map (plain text)"
    )
    secret_key: str = Field(
        "dev-only-change-me", description="Signs short-lived links; must be set outside development"
    )

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        if self.environment == "production" and self.secret_key == "dev-only-change-me":
            raise ValueError("POLLCHECK_SECRET_KEY must be set to a real secret in production")
        tiles = self.map_tile_url
        if tiles and not (tiles.startswith(("http://", "https://", "/")) and "{z}" in tiles):
            raise ValueError(
                "POLLCHECK_MAP_TILE_URL must be an http(s) URL or a path on this server "
                "with {z}, {x} and {y} in it, e.g. https://tiles.example.org/{z}/{x}/{y}.png"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
