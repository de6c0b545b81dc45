"""The recorder's settings (CONTRACT.md section 7)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from services.common.database import check_database_url
from services.common.settings import KafkaSettings, ServiceSettings

DEFAULT_TARIFF = Path(__file__).parent / "tariffs" / "default.toml"


class DatabaseSettings(ServiceSettings):
    """Just the database: what `calltrail migrate` and `calltrail costs` need."""

    database_url: str
    billing_tz: str = "Asia/Tokyo"
    calltrail_tariff: Path = DEFAULT_TARIFF

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("billing_tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Asia/Tokyo") from None
        return value

    @field_validator("calltrail_tariff")
    @classmethod
    def _tariff_file(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError("must name a readable tariff file")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.billing_tz)


class RecorderSettings(DatabaseSettings, KafkaSettings):
    recorder_group: str = "calltrail-recorder"
    recorder_host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    recorder_port: int = Field(default=8081, ge=0, le=65_535)
    recorder_batch_max: int = Field(default=5000, ge=1, le=50_000)
    # Numbers the company holds, for rental charges: seeded from the caller ID.
    twilio_caller_id: str | None = None
    home_region: str = "JP"

    def secret_values(self) -> list[str]:
        from sqlalchemy.engine import make_url

        password = make_url(self.database_url).password
        return [password] if password else []
