"""Configuration from environment variables. A bad value stops start-up with one line naming the variable."""

from __future__ import annotations

import json
import os
import secrets
import time
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message is one line naming the variable."""


def _is_grpc_target(value: str) -> bool:
    if value.startswith(("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:")):
        return len(value.split(":", 1)[1]) > 0
    return _split_host_port(value) is not None


def _split_host_port(value: str) -> tuple[str, int] | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


class SchoolSender(BaseModel):
    """A school's own name and sender address in its emails (PORTAL_SCHOOL_SENDERS, keyed by school)."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    mail_from: str = ""

    @field_validator("mail_from")
    @classmethod
    def _address(cls, value: str) -> str:
        if value and "@" not in parseaddr(value)[1]:
            raise ValueError("expected an address such as 'Lincoln High <office@lincoln.example.org>'")
        return value


class Settings(BaseSettings):
    """Every setting of every process. Names are the environment variables (PORTAL_ prefix, Slack's own names)."""

    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore", case_sensitive=False)

    data_dir: Path = Path("./var")
    database_url: str | None = None
    accounts_addr: str = "127.0.0.1:50051"
    imports_addr: str = "127.0.0.1:50052"
    notify_addr: str = "127.0.0.1:50053"
    listen: str | None = None
    health_listen: str | None = None
    service_token: SecretStr | None = None
    secret_key: SecretStr | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    migrate: Literal["auto", "never"] = "auto"

    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    mail_from: str = "Parent Portal <no-reply@localhost>"
    mail_sink_port: int = Field(default=2525, ge=1, le=65535)
    # Notify's delivery (see services/notify): SMTP pool, retries, leases and the per-domain rate limit.
    smtp_pool_size: int = Field(default=4, ge=1, le=64)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_messages_per_connection: int = Field(default=100, ge=1)
    smtp_ca_file: Path | None = None
    school_senders: Annotated[dict[str, SchoolSender], NoDecode] = Field(default_factory=dict)
    notify_retry_initial_seconds: float = Field(default=30.0, gt=0)
    notify_retry_max_seconds: float = Field(default=3600.0, gt=0)
    notify_retry_max_age_seconds: float = Field(default=86400.0, gt=0)
    notify_lease_seconds: float = Field(default=300.0, gt=0)
    notify_poll_seconds: float = Field(default=2.0, gt=0)
    notify_batch_size: int = Field(default=100, ge=1, le=1000)
    notify_domain_rate_limit: int = Field(default=0, ge=0)
    notify_domain_rate_window_seconds: int = Field(default=60, ge=1)

    public_url: str = "http://127.0.0.1:8080"
    web_port: int = Field(default=8080, ge=1, le=65535)
    bot_port: int = Field(default=3000, ge=1, le=65535)
    school_name: str = "Parent Portal"
    timezone: str = "UTC"
    alert_channel: str | None = None
    blob_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"

    import_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    import_max_rows: int = Field(default=200_000, ge=1)
    import_max_columns: int = Field(default=100, ge=1)
    import_batch_rows: int = Field(default=2000, ge=1, le=5000)  # the accounts service takes 5,000 rows a batch at most
    job_lease_seconds: float = Field(default=30.0, ge=1.0, le=600.0)
    # Worker processes of the accounts service, hashing passwords, planning trial-run batches and applying upload
    # batches (read there as PORTAL_HASH_WORKERS); unset: one per CPU.
    hash_workers: int | None = Field(default=None, ge=1, le=256)
    # Generation of parent accounts from the roster (services/accounts/generation*.py).
    # After roster imports: generate for guardians new to the roster (all contacts, primary contacts only, or off).
    autogenerate: Literal["all", "primary", "off"] = "off"
    # Seconds without roster changes before auto-generation starts (an import arrives in several batches).
    autogenerate_quiet_seconds: float = Field(default=60.0, ge=0.0, le=86_400.0)
    # Usernames of generated accounts: the email address, or first initial + last name (+ a number when taken).
    username_scheme: Literal["email", "initial_lastname"] = "email"
    # Email a reminder this many days before an invitation link expires (0: off).
    invite_reminder_days: int = Field(default=0, ge=0, le=6)
    # Usage reports: up to this many parents, a sheet per parent; over it, one "Sign-ins" sheet with an autofilter.
    usage_sheet_limit: int = Field(default=500, ge=1, le=5000)
    # Bulk resets: how long the job waits for notify to deliver its emails before writing its workbook.
    reset_delivery_wait_seconds: float = Field(default=600.0, ge=0, le=86_400)
    # The parents' pages: reverse proxies in front of them (the client address is X-Forwarded-For's entry that
    # many hops from the right; 0: the connection's address), and minutes a signed-in page may sit idle.
    web_proxy_hops: int = Field(default=0, ge=0, le=10)
    web_session_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Account care: when a roster import changes a contact's email or name, the accounts made for that contact are
    # listed (report: `/portal drift`, and a warning on the import's rows) or updated to match (update; the parent
    # is emailed at both addresses).
    contact_changes: Literal["report", "update"] = "report"

    admins: str = ""
    admin_group: str | None = None
    channels: str = ""

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET")
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/", validation_alias=AliasChoices("SLACK_API_URL")
    )

    @field_validator("smtp_host", "alert_channel", "blob_url", "listen", "health_listen", "admin_group",
                     "hash_workers", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("school_senders", mode="before")
    @classmethod
    def _senders_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError('expected JSON such as {"Lincoln High": {"name": "Lincoln High School", '
                                 '"mail_from": "Lincoln High <office@lincoln.example.org>"}}') from None
        return value

    @field_validator("accounts_addr", "imports_addr", "notify_addr")
    @classmethod
    def _grpc_target(cls, value: str) -> str:
        if not _is_grpc_target(value):
            raise ValueError("expected a gRPC target such as host:port, dns:///host:port or ipv4:a:p1,b:p2")
        return value

    @field_validator("listen", "health_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None and _split_host_port(value) is None:
            raise ValueError("expected host:port, e.g. 0.0.0.0:50051")
        return value

    @field_validator("blob_url")
    @classmethod
    def _blob_url(cls, value: str | None) -> str | None:
        if value is not None:
            from plumbing.blobs import parse_s3_url

            parse_s3_url(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http(s) URL such as https://portal.example.org")
        return value.rstrip("/")

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone name such as Europe/London") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError("PORTAL_SMTP_TLS and PORTAL_SMTP_STARTTLS exclude each other: choose one")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("PORTAL_TLS_CERT and PORTAL_TLS_KEY go together: set both or neither")
        for name in ("tls_cert", "tls_key", "tls_ca", "smtp_ca_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"PORTAL_{name.upper()}: no file at {path}")
        return self

    # Derived values ----------------------------------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'portal.db').resolve()}"

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    @property
    def admin_ids(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.admins.split(",") if part.strip())

    @property
    def channel_ids(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.channels.split(",") if part.strip())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def listen_address(self, service: str) -> str:
        """The address a service's server binds: PORTAL_LISTEN, or its own address variable as host:port."""
        if self.listen:
            return self.listen
        target = getattr(self, f"{service}_addr")
        if _split_host_port(target) is None:
            raise ConfigError(
                f"PORTAL_{service.upper()}_ADDR={target!r} is a dial target, not host:port: set PORTAL_LISTEN "
                "to the address this server should listen on"
            )
        return target

    def dial_target(self, service: str) -> str:
        return str(getattr(self, f"{service}_addr"))

    @cached_property
    def token(self) -> str:
        """The service token: PORTAL_SERVICE_TOKEN, or one generated once into the data dir and shared."""
        if self.service_token is not None:
            return self.service_token.get_secret_value()
        return _shared_secret(self.data_dir / "service-token")

    @cached_property
    def web_secret(self) -> str:
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _shared_secret(self.data_dir / "secret-key")


def _shared_secret(path: Path) -> str:
    """Read a secret file, creating it atomically (first writer wins) with owner-only permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            value = path.read_text().strip()
            if value:
                return value
            time.sleep(0.02)
        raise ConfigError(f"{path} is empty: delete it so a new secret is generated") from None
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


_ALIASES = {"slack_bot_token": "SLACK_BOT_TOKEN", "slack_app_token": "SLACK_APP_TOKEN",
            "slack_signing_secret": "SLACK_SIGNING_SECRET", "slack_api_url": "SLACK_API_URL"}


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise ConfigError with one line naming the variable on a bad value."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = _ALIASES.get(field, f"PORTAL_{field.upper()}") if field else "configuration"
        given = error.get("input")
        message = str(error["msg"]).removeprefix("Value error, ")
        shown = "" if field in ("service_token", "secret_key", "smtp_password") or not isinstance(given, str) \
            else f"={given!r}"
        if not field:
            raise ConfigError(message) from None
        raise ConfigError(f"{variable}{shown}: {message}") from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings
