"""The one Settings object of ExperimentOS; nothing else reads the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COOKIE_SECRET = "demo-only-cookie-secret-change-me"


class Settings(BaseSettings):
    """Every setting, read from the environment or a `.env` file (docs/operations.md "Settings")."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{PROJECT_ROOT / 'data' / 'experimentos.db'}",
        description="SQLAlchemy URL of the app database; embedded SQLite by default.",
    )
    artifacts_url: str = Field(
        default=str(PROJECT_ROOT / "data" / "artifacts"),
        description="Where report artifacts go: a local folder, or s3://bucket/prefix.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible store (MinIO, moto); unset for AWS."
    )
    demo_mode: bool = Field(
        default=True, description="Allow demo users and the demo cookie secret."
    )
    auth_cookie_secret: str = Field(
        default=DEFAULT_COOKIE_SECRET, description="Secret that signs the login cookie."
    )
    auth_cookie_name: str = "experimentos_auth"
    auth_cookie_expiry_days: float = 7.0
    credentials_file: Path = Field(
        default=PROJECT_ROOT / ".streamlit" / "credentials.yaml",
        description="YAML file of app users, outside git (see the .example beside it).",
    )
    database_pool_size: int = Field(
        default=5,
        ge=1,
        le=200,
        description="Connections a process keeps to the database, and the most it opens; the "
        "API lets this many requests use the database at once.",
    )
    database_pool_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How long a session waits for a free connection."
    )
    database_connect_timeout_seconds: int = Field(
        default=5, ge=1, le=300, description="How long connecting to PostgreSQL may take."
    )
    database_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="API only: how long one PostgreSQL statement, commit or rollback may take "
        "(statement_timeout, TCP timeouts); a server that cannot even cancel it has its "
        "connection closed a second later. The request gets a 503. The app, the CLI "
        "(migrations, seeding) and the DAGs have no such limit.",
    )
    sqlite_busy_timeout_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="How long a SQLite write waits for another writer to finish.",
    )
    api_threads: int = Field(
        default=24,
        ge=2,
        le=1000,
        description="Worker threads of an API process (route code, serialisation); must "
        "exceed DATABASE_POOL_SIZE.",
    )
    api_read_slots: int = Field(
        default=1,
        ge=1,
        le=200,
        description="API only: how many reads (GET) of one process use the database at once "
        "(within DATABASE_POOL_SIZE; writes use the pool's other connections). One per process: "
        "a read takes about a millisecond of the database, and more of them at once only add "
        "threads that take the CPU from a database on the same host (docs/benchmarks.md). "
        "Scale reads with API processes (workers), not this.",
    )
    api_queue_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="How long an API request waits for a database slot before a 503.",
    )
    api_max_queued: int = Field(
        default=500,
        ge=0,
        le=100_000,
        description="Requests an API process lets wait for a database slot; more get a 503 "
        "at once.",
    )
    api_max_upload_mb: int = Field(default=200, ge=1, description="Largest upload the API accepts.")
    upload_max_decompressed_mb: int = Field(
        default=2048,
        ge=1,
        le=1024 * 1024,
        description="Largest uploaded metric-data file once decompressed (a .csv.gz as CSV "
        "text, a Parquet file's uncompressed columns), in MiB; larger is refused before "
        "it is parsed.",
    )
    upload_max_rows: int = Field(
        default=20_000_000,
        ge=1,
        description="Most data rows (lines of a CSV) an uploaded metric-data file may hold; "
        "more is refused before it is parsed (load bigger tables from the warehouse).",
    )
    upload_max_columns: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Most columns an uploaded metric-data file may have; more is refused "
        "from its header (CSV) or metadata (Parquet).",
    )
    upload_max_parallel: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Uploads an API process parses at once, on threads of their own (not "
        "API_THREADS); more wait, as for a database slot, then get 503.",
    )
    api_max_json_kb: int = Field(
        default=1024,
        ge=1,
        le=1024 * 1024,
        description="Largest JSON request body the API accepts, in KiB (file uploads have "
        "API_MAX_UPLOAD_MB).",
    )
    api_key_offline_grace_seconds: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="While the database does not answer, an API key this process checked at "
        "most this long ago (and saw no revocation since) is still accepted on routes that "
        "need no database (the planner); 0 turns this off.",
    )
    api_cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS on the API; empty = CORS off."
    )
    planner_time_budget_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Computing time one planner solve (a sample size, power or MDE) may take; "
        "past it the plan is refused with a reason (the API answers 422).",
    )
    api_planner_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Planner requests an API process computes at once, on threads of their "
        "own (never the database routes' API_THREADS).",
    )
    api_planner_max_queued: int = Field(
        default=32,
        ge=0,
        le=10_000,
        description="Planner requests an API process lets wait for a planner thread (at most "
        "API_QUEUE_TIMEOUT_SECONDS); more get a 503 at once.",
    )
    backlog_testable_weeks: int = Field(
        default=8, ge=1, description="An idea needing longer than this to reach its MDE is flagged."
    )
    warehouse_statement_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="A warehouse query running longer is cancelled (the refresh fails, to be "
        "retried).",
    )
    warehouse_max_result_rows: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="Rows one warehouse query may return (variants x exposure days x dimension "
        "values); more refuses the refresh.",
    )
    warehouse_multi_variant_threshold: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        description="Share of units seen in more than one variant above which a warehouse "
        "refresh refuses; below it they are excluded and reported.",
    )
    warehouse_late_data_days: int = Field(
        default=2,
        ge=0,
        le=90,
        description="Days after a unit's window closes during which its facts may still "
        "arrive; exposure days are recomputed until then.",
    )

    spool_dir: Path | None = Field(
        default=None,
        description="Where processes keep scratch files (an upload being loaded, sort "
        "partitions, DuckDB's spill), one folder each; a folder whose process died is removed "
        "when the next one starts. Unset: experimentos-spool in the system's temp folder.",
    )

    demo_warehouse_path: Path | None = Field(
        default=None,
        description="The demo's DuckDB warehouse file (`make run` seeds it); unset: "
        "warehouse.duckdb beside the SQLite app database, or "
        "data/demo-warehouse-<database>.duckdb for a PostgreSQL one.",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url_supported(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                "DATABASE_URL must be a sqlite:/// or postgresql+psycopg2:// URL "
                f"(got {value.split(':', 1)[0]}:...)"
            )
        return value

    @model_validator(mode="after")
    def _threads_exceed_pool(self) -> Settings:
        if self.api_threads <= self.database_pool_size:
            raise ValueError(
                f"API_THREADS ({self.api_threads}) must exceed DATABASE_POOL_SIZE "
                f"({self.database_pool_size}): requests holding a connection need a thread, "
                "and requests without one need some too"
            )
        return self

    def check_secrets(self) -> None:
        """Refuse the placeholder cookie secret outside demo mode."""
        if not self.demo_mode and self.auth_cookie_secret == DEFAULT_COOKIE_SECRET:
            raise RuntimeError(
                "DEMO_MODE is off but AUTH_COOKIE_SECRET is the demo placeholder: "
                "set AUTH_COOKIE_SECRET to a long random string (e.g. `openssl rand -hex 32`)."
            )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def environment_value(name: str) -> str | None:
    """The environment variable ``name`` (a warehouse connection's ``${NAME}`` credential), or
    None when unset. Credentials are named in a connection, never stored; this is the one
    place they are read."""
    import os

    return os.environ.get(name)


def demo_warehouse_file(database_url: str) -> Path:
    """Where the demo warehouse of the app database at ``database_url`` lives: the
    DEMO_WAREHOUSE_PATH setting, else ``warehouse.duckdb`` beside a SQLite file, else
    ``data/demo-warehouse-<database name>.duckdb`` (one file per app database)."""
    configured = get_settings().demo_warehouse_path
    if configured is not None:
        return configured
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).resolve().parent / "warehouse.duckdb"
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(url.database or "app"))
    return PROJECT_ROOT / "data" / f"demo-warehouse-{name}.duckdb"
